// SPDX-License-Identifier: MIT
// matmul for every weight type, decode and prefill row counts, with and without bias, packed and
// strided x/y, against a float64 product of the reference-dequantized weights.
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

namespace {

// Columns per type: several blocks, and for the plain float types a length that is not a multiple
// of any vector width.
uint64_t test_cols(uint32_t type) {
  const uint64_t blk = apr_test::block_size(type);
  return blk == 1 ? 203 : (blk == 32 ? 160 : 512);
}

struct MatmulCase {
  uint32_t type;
  uint64_t n_out, n_cols;
  uint32_t n_rows;
  bool bias, strided, persistent;
};

void run_case(Plugin& p, const MatmulCase& c, std::mt19937_64& rng) {
  INFO("type " << apr_test::ref_type_name(c.type) << ", " << c.n_out << "x" << c.n_cols << ", rows "
               << c.n_rows << (c.bias ? ", bias" : "") << (c.strided ? ", strided" : "")
               << (c.persistent ? ", persistent" : ""));
  std::vector<uint8_t> bytes = apr_test::random_blocks(c.type, c.n_out * c.n_cols, rng);
  const std::vector<double> w = ref_weight(c.type, bytes, c.n_out, c.n_cols);
  Weight weight(p, c.type, c.n_out, c.n_cols, bytes, c.persistent);

  const uint64_t xs = c.strided ? c.n_cols + 5 : c.n_cols;
  const uint64_t ys = c.strided ? c.n_out + 3 : c.n_out;
  const std::vector<float> x = random_floats(rng, c.n_rows * xs);
  const std::vector<float> bias = random_floats(rng, c.n_out);
  GuardedBuffer bx(p, x.size()), bb(p, bias.size()), by(p, c.n_rows * ys);
  bx.write(x);
  bb.write(bias);

  apr_matmul_args args{sizeof(apr_matmul_args),
                       weight.get(),
                       bx.get(),
                       bx.offset(),
                       c.strided ? static_cast<uint32_t>(xs) : 0u,
                       c.n_rows,
                       c.bias ? bb.get() : nullptr,
                       bb.offset(),
                       by.get(),
                       by.offset(),
                       c.strided ? static_cast<uint32_t>(ys) : 0u};
  REQUIRE_APR_OK(p, p.api().matmul(p.device(), &args));

  const std::vector<float> y = by.read();
  std::vector<float> got;
  std::vector<double> want;
  uint64_t gap_changed = 0;
  for (uint32_t r = 0; r < c.n_rows; ++r) {
    for (uint64_t o = 0; o < c.n_out; ++o) {
      double s = c.bias ? bias[o] : 0.0;
      for (uint64_t i = 0; i < c.n_cols; ++i) s += w[o * c.n_cols + i] * x[r * xs + i];
      want.push_back(s);
      got.push_back(y[r * ys + o]);
    }
    for (uint64_t o = c.n_out; o < ys && r + 1 < c.n_rows; ++o)
      gap_changed += !std::isnan(y[r * ys + o]);  // stride gaps must keep their NaN fill
  }
  check_close(got, want, matmul_tolerance(c.type), "matmul");
  REQUIRE(gap_changed == 0);
  bx.check_guards();
  bb.check_guards();
  by.check_guards();
}

}  // namespace

TEST_CASE("matmul matches a float64 reference for every weight type", "[matmul]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(1234);
  for (uint32_t type : p.claimed(apr_test::ref_types()))
    for (uint32_t n_rows : {1u, 3u, 17u})
      for (bool bias : {false, true})
        for (bool strided : {false, true}) {
          const bool persistent = (n_rows + bias + strided) % 2 == 0;
          run_case(p, {type, 37, test_cols(type), n_rows, bias, strided, persistent}, rng);
        }
}

TEST_CASE("matmul stays accurate at hidden size 4864", "[matmul]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(99);
  for (uint32_t type : p.claimed(
           {apr_test::kQ8_0, apr_test::kQ4_K, apr_test::kQ6_K, apr_test::kF16, apr_test::kF32}))
    for (uint32_t n_rows : {1u, 9u}) run_case(p, {type, 24, 4864, n_rows, true, false, true}, rng);
}

TEST_CASE("matmul handles many rows and many output tiles", "[matmul]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(100);
  for (uint32_t type :
       p.claimed({apr_test::kQ4_0, apr_test::kQ5_K, apr_test::kBF16, apr_test::kF16}))
    run_case(p, {type, 150, test_cols(type), 70, true, true, false}, rng);
}

TEST_CASE("matmul results do not depend on the thread count", "[matmul][determinism]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(7);
  const uint64_t n_out = 150, n_cols = 768;
  for (uint32_t n_rows : {1u, 70u}) {
    INFO("rows " << n_rows);
    const uint32_t type = p.claims(apr_test::kQ4_K) ? apr_test::kQ4_K : any_claimed_type(p);
    std::vector<uint8_t> bytes = apr_test::random_blocks(type, n_out * n_cols, rng);
    const std::vector<float> x = random_floats(rng, n_rows * n_cols);
    std::vector<std::vector<float>> results;
    for (uint32_t n_threads : {1u, 2u, 3u}) {
      apr_device* d = p.open_device(n_threads);
      REQUIRE(d != nullptr);
      apr_weight_desc desc{sizeof desc,  type,         0, n_cols, n_out, bytes.data(),
                           bytes.size(), "determinism"};
      apr_weight* w = nullptr;
      apr_buffer *bx = nullptr, *by = nullptr;
      REQUIRE_APR_OK(p, p.api().weight_create(d, &desc, &w));
      REQUIRE_APR_OK(p, p.api().buffer_alloc(d, x.size() * 4, &bx));
      REQUIRE_APR_OK(p, p.api().buffer_alloc(d, n_rows * n_out * 4, &by));
      REQUIRE_APR_OK(p, p.api().buffer_write(d, bx, 0, x.data(), x.size() * 4));
      apr_matmul_args args{sizeof args, w, bx, 0, 0, n_rows, nullptr, 0, by, 0, 0};
      REQUIRE_APR_OK(p, p.api().matmul(d, &args));
      std::vector<float> y(n_rows * n_out);
      REQUIRE_APR_OK(p, p.api().buffer_read(d, by, 0, y.data(), y.size() * 4));
      results.push_back(y);
      p.api().buffer_free(d, bx);
      p.api().buffer_free(d, by);
      p.api().weight_free(d, w);
      p.api().device_close(d);
    }
    for (size_t i = 1; i < results.size(); ++i)
      REQUIRE(std::memcmp(results[0].data(), results[i].data(), results[0].size() * 4) == 0);
  }
}
