// SPDX-License-Identifier: MIT
// rope (both pairings, pos0 > 0, n_rot < head_dim, strided rows) and kv_store.
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

TEST_CASE("rope matches a float64 reference in both modes", "[rope]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(21);
  const uint32_t n_rows = 3, n_heads = 4, head_dim = 16, n_rot = 12, pos0 = 7;
  const uint32_t width = n_heads * head_dim, stride = width + 6;
  for (uint32_t mode : {uint32_t{APR_ROPE_INTERLEAVED}, uint32_t{APR_ROPE_HALF}})
    for (float freq_base : {10000.0f, 1000000.0f}) {
      INFO("mode " << mode << ", base " << freq_base);
      const float freq_scale = 0.5f;
      const std::vector<float> x = random_floats(rng, n_rows * stride);
      GuardedBuffer bx(p, x.size());
      bx.write(x);
      apr_rope_args args{sizeof args, bx.get(), bx.offset(), stride, n_rows,    n_heads,
                         head_dim,    n_rot,    mode,        pos0,   freq_base, freq_scale};
      REQUIRE_APR_OK(p, p.api().rope(p.device(), &args));
      const std::vector<float> y = bx.read();
      std::vector<float> got;
      std::vector<double> want;
      uint64_t untouched_changed = 0;
      for (uint32_t r = 0; r < n_rows; ++r) {
        std::vector<double> row(x.begin() + r * stride, x.begin() + r * stride + width);
        ref_rope_row(row, n_heads, head_dim, n_rot, mode, pos0 + r, freq_base, freq_scale);
        for (uint32_t i = 0; i < width; ++i) {
          got.push_back(y[r * stride + i]);
          want.push_back(row[i]);
          // Dims >= n_rot pass through bit for bit.
          if (i % head_dim >= n_rot) untouched_changed += y[r * stride + i] != x[r * stride + i];
        }
        for (uint32_t i = width; i < stride; ++i)
          untouched_changed += y[r * stride + i] != x[r * stride + i];  // stride gap
      }
      // Angles up to ~10 rad: an f32 angle would already err by ~1e-6, so allow 1e-10.
      check_close(got, want, 1e-10, "rope");
      REQUIRE(untouched_changed == 0);
      bx.check_guards();
    }
}

TEST_CASE("rope divides angles by freq_factors (ABI 1.1) and ignores them in a 1.0 struct",
          "[rope]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(22);
  const uint32_t n_rows = 2, n_heads = 2, head_dim = 16, n_rot = 16, pos0 = 40;
  const uint32_t width = n_heads * head_dim;
  std::vector<float> factors(n_rot / 2);
  std::uniform_real_distribution<float> pick(1.0f, 8.0f);  // Llama 3.1's range
  for (float& f : factors) f = pick(rng);
  const std::vector<float> x = random_floats(rng, n_rows * width);
  // A 1.0 plugin cannot know the factors (the host refuses models that need them on it), so
  // only the 1.0-sized struct is checked there.
  const bool speaks_1_1 = p.api().abi_minor >= 1;
  if (!speaks_1_1) conformance::note("ABI 1.0 plugin: freq_factors not checked");
  for (bool v1_0 : {false, true}) {
    if (!v1_0 && !speaks_1_1) continue;
    INFO((v1_0 ? "struct of ABI 1.0 size" : "struct of ABI 1.1 size"));
    GuardedBuffer bx(p, x.size());
    bx.write(x);
    apr_rope_args args{sizeof args, bx.get(), bx.offset(),          0,    n_rows,    n_heads,
                       head_dim,    n_rot,    APR_ROPE_INTERLEAVED, pos0, 500000.0f, 1.0f};
    args.freq_factors = factors.data();
    // A 1.0 host's struct ends before freq_factors: whatever lies there must not be read.
    if (v1_0) args.struct_size = APR_ROPE_ARGS_SIZE_V1_0;
    REQUIRE_APR_OK(p, p.api().rope(p.device(), &args));
    const std::vector<float> y = bx.read();
    std::vector<double> want;
    for (uint32_t r = 0; r < n_rows; ++r) {
      std::vector<double> row(x.begin() + r * width, x.begin() + (r + 1) * width);
      ref_rope_row(row, n_heads, head_dim, n_rot, APR_ROPE_INTERLEAVED, pos0 + r, 500000.0, 1.0,
                   v1_0 ? nullptr : factors.data());
      want.insert(want.end(), row.begin(), row.end());
    }
    check_close(y, want, 1e-10, "rope with freq_factors");
    bx.check_guards();
  }
}

TEST_CASE("kv_store copies rows into the caches at pos0", "[kv_store]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(22);
  const uint32_t kv_dim = 24, n_ctx = 16, pos0 = 5, n_rows = 3, src_stride = 64;
  const std::vector<float> src = random_floats(rng, n_rows * src_stride);
  GuardedBuffer bsrc(p, src.size());
  bsrc.write(src);
  // Caches have no offset argument, so they are exact n_ctx-row buffers; the rows outside
  // [pos0, pos0 + n_rows) serve as their guards.
  apr_buffer *k_cache = nullptr, *v_cache = nullptr;
  REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), n_ctx * kv_dim * 4, &k_cache));
  REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), n_ctx * kv_dim * 4, &v_cache));
  const std::vector<float> nines(n_ctx * kv_dim, 9.0f);
  REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), k_cache, 0, nines.data(), nines.size() * 4));
  REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), v_cache, 0, nines.data(), nines.size() * 4));
  // k is column 0.. of each source row, v starts 32 floats further (as in a fused qkv row).
  apr_kv_store_args args{sizeof args, bsrc.get(), bsrc.offset(), bsrc.get(), bsrc.offset() + 32 * 4,
                         src_stride,  n_rows,     kv_dim,        pos0,       k_cache,
                         v_cache};
  REQUIRE_APR_OK(p, p.api().kv_store(p.device(), &args));
  std::vector<float> k(n_ctx * kv_dim), v(n_ctx * kv_dim);
  REQUIRE_APR_OK(p, p.api().buffer_read(p.device(), k_cache, 0, k.data(), k.size() * 4));
  REQUIRE_APR_OK(p, p.api().buffer_read(p.device(), v_cache, 0, v.data(), v.size() * 4));
  uint64_t wrong = 0;
  for (uint32_t t = 0; t < n_ctx; ++t)
    for (uint32_t c = 0; c < kv_dim; ++c) {
      const bool stored = t >= pos0 && t < pos0 + n_rows;
      const float want_k = stored ? src[(t - pos0) * src_stride + c] : 9.0f;
      const float want_v = stored ? src[(t - pos0) * src_stride + 32 + c] : 9.0f;
      wrong += k[t * kv_dim + c] != want_k;
      wrong += v[t * kv_dim + c] != want_v;
    }
  REQUIRE(wrong == 0);
  bsrc.check_guards();

  // A store that would run past the end of the cache is refused.
  args.pos0 = n_ctx - 1;
  REQUIRE(p.api().kv_store(p.device(), &args) != APR_OK);
  REQUIRE(std::strlen(p.api().error_message()) > 0);
  p.api().buffer_free(p.device(), k_cache);
  p.api().buffer_free(p.device(), v_cache);
}
