// SPDX-License-Identifier: MIT
// The ABI's struct_size rules and the capability query, from the host's side: structs of the
// least 1.0 size and structs larger than the plugin's header are accepted, smaller ones refused
// without a crash, output structs are written only inside the caller's struct_size, and what the
// capability query claims is what weight_create does.
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

namespace {

constexpr uint8_t kFill = 0xA5;

// An output struct of `size` bytes inside a larger block of known bytes: the plugin may write
// only the first `size` bytes.
template <typename T>
struct Sized {
  explicit Sized(size_t size) {
    std::memset(bytes, kFill, sizeof bytes);
    const size_t s = size;
    std::memcpy(bytes, &s, sizeof s);
  }
  T* get() { return reinterpret_cast<T*>(bytes); }
  uint64_t touched_after(size_t size) const {
    uint64_t n = 0;
    for (size_t i = size; i < sizeof bytes; ++i) n += bytes[i] != kFill;
    return n;
  }
  alignas(16) unsigned char bytes[sizeof(T) + 128];
};

}  // namespace

TEST_CASE("output structs are written only inside the caller's struct_size", "[abi]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  const uint32_t dev = p.device_index();
  for (size_t size : {size_t{APR_SIZE_THROUGH(apr_device_info, kind)},
                      size_t{APR_DEVICE_INFO_SIZE_V1_0}, sizeof(apr_device_info) + 64}) {
    INFO("apr_device_info.struct_size " << size);
    Sized<apr_device_info> info(size);
    REQUIRE_APR_OK(p, p.api().device_info(dev, info.get()));
    REQUIRE(info.touched_after(size) == 0);
  }
  for (size_t size : {size_t{APR_SIZE_THROUGH(apr_probe_result, score)},
                      size_t{APR_PROBE_RESULT_SIZE_V1_0}, sizeof(apr_probe_result) + 64}) {
    INFO("apr_probe_result.struct_size " << size);
    Sized<apr_probe_result> probe(size);
    REQUIRE_APR_OK(p, p.api().probe(probe.get()));
    REQUIRE(probe.touched_after(size) == 0);
    REQUIRE(probe.get()->score > 0);
  }
  if (p.has_caps()) {
    for (size_t size : {size_t{APR_SIZE_THROUGH(apr_device_caps, weight_types)},
                        size_t{APR_DEVICE_CAPS_SIZE_V1_2}, sizeof(apr_device_caps) + 64}) {
      INFO("apr_device_caps.struct_size " << size);
      Sized<apr_device_caps> caps(size);
      REQUIRE_APR_OK(p, p.api().device_caps(dev, caps.get()));
      REQUIRE(caps.touched_after(size) == 0);
      REQUIRE(caps.get()->weight_types == p.caps().weight_types);
    }
  }
}

TEST_CASE("argument structs: 1.0-sized and oversized accepted, undersized refused", "[abi]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(81);
  const uint32_t type = any_claimed_type(p);
  const uint64_t n_out = 12, n_cols = apr_test::block_size(type) == 1 ? 40 : 256;
  std::vector<uint8_t> bytes = apr_test::random_blocks(type, n_out * n_cols, rng);
  const std::vector<double> w = ref_weight(type, bytes, n_out, n_cols);
  Weight weight(p, type, n_out, n_cols, bytes, false);
  const std::vector<float> x = random_floats(rng, n_cols);
  GuardedBuffer bx(p, n_cols), by(p, n_out);
  bx.write(x);
  std::vector<double> want(n_out);
  for (uint64_t o = 0; o < n_out; ++o)
    for (uint64_t i = 0; i < n_cols; ++i) want[o] += w[o * n_cols + i] * x[i];

  // A host newer than the plugin sends a bigger struct; the tail is unknown to the plugin.
  struct {
    apr_matmul_args a;
    unsigned char tail[64];
  } big;
  std::memset(&big, 0xEE, sizeof big);
  big.a = apr_matmul_args{sizeof big, weight.get(), bx.get(), bx.offset(), 0, 1, nullptr, 0,
                          by.get(),   by.offset(),  0};
  for (size_t size : {size_t{APR_MATMUL_ARGS_SIZE_V1_0}, sizeof(apr_matmul_args), sizeof big}) {
    INFO("apr_matmul_args.struct_size " << size);
    by.write(std::vector<float>(n_out, std::numeric_limits<float>::quiet_NaN()));
    big.a.struct_size = size;
    REQUIRE_APR_OK(p, p.api().matmul(p.device(), &big.a));
    check_close(by.read(), want, matmul_tolerance(type), "matmul");
  }
  for (size_t size : {size_t{0}, size_t{8}, size_t{APR_MATMUL_ARGS_SIZE_V1_0 - 4}}) {
    INFO("apr_matmul_args.struct_size " << size);
    big.a.struct_size = size;
    const std::vector<float> before = by.read();
    REQUIRE(p.api().matmul(p.device(), &big.a) == APR_ERR_INVALID_ARGUMENT);
    REQUIRE(std::memcmp(before.data(), by.read().data(), n_out * 4) == 0);
  }
  by.check_guards();

  // A 1.0 host's rope struct ends before freq_factors: whatever lies behind it must be ignored.
  const uint32_t heads = 2, head_dim = 8;
  const std::vector<float> q = random_floats(rng, heads * head_dim);
  GuardedBuffer bq(p, q.size());
  bq.write(q);
  apr_rope_args rope{};
  rope.struct_size = APR_ROPE_ARGS_SIZE_V1_0;
  rope.x = bq.get();
  rope.x_offset = bq.offset();
  rope.n_rows = 1;
  rope.n_heads = heads;
  rope.head_dim = head_dim;
  rope.n_rot = head_dim;
  rope.mode = APR_ROPE_INTERLEAVED;
  rope.pos0 = 7;
  rope.freq_base = 10000.0f;
  rope.freq_scale = 1.0f;
  rope.freq_factors = reinterpret_cast<const float*>(uintptr_t{16});  // never to be read
  REQUIRE_APR_OK(p, p.api().rope(p.device(), &rope));
  std::vector<double> rq(q.begin(), q.end());
  ref_rope_row(rq, heads, head_dim, head_dim, APR_ROPE_INTERLEAVED, 7, 10000.0, 1.0);
  check_close(bq.read(), rq, 1e-12, "rope with a 1.0-sized struct");
  bq.check_guards();
}

TEST_CASE("the capability query matches what weight_create accepts", "[abi][caps]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  const apr_plugin_api& api = p.api();
  REQUIRE(api.struct_size >= APR_PLUGIN_API_SIZE_V1_0);
  if (!p.has_caps()) {
    conformance::note("no capability query (ABI " + std::to_string(api.abi_minor) +
                      " plugin): claimed types are those weight_create accepts");
    return;
  }
  const apr_device_caps& caps = p.caps();
  REQUIRE(caps.weight_types != 0);
  const uint64_t family_ops = APR_FEATURE_NORM_GROUPS | APR_FEATURE_ATTN_WINDOW |
                              APR_FEATURE_ATTN_SOFTCAP | APR_FEATURE_GELU;
  const uint64_t known = APR_FEATURE_ROPE_FREQ_FACTORS | APR_FEATURE_STEP_CAPTURE |
                         APR_FEATURE_FUSED_TRACE | family_ops;
  INFO("features 0x" << std::hex << caps.features);
  REQUIRE((caps.features & ~known) == 0);
  // The operations of ABI 1.3 are claimed only by a plugin that speaks it.
  if (caps.features & family_ops) REQUIRE(api.abi_minor >= 3);
  std::string claimed;
  for (uint32_t t : apr_test::ref_types()) {
    const bool claims = (caps.weight_types >> t) & 1u;
    if (claims) claimed += std::string(claimed.empty() ? "" : " ") + apr_test::ref_type_name(t);
    std::mt19937_64 rng(t);
    const uint64_t n_cols = apr_test::block_size(t) == 1 ? 32 : 256;
    std::vector<uint8_t> bytes = apr_test::random_blocks(t, n_cols, rng);
    apr_weight_desc desc{sizeof desc, t, 0, n_cols, 1, bytes.data(), bytes.size(), "caps"};
    apr_weight* w = nullptr;
    const apr_status s = api.weight_create(p.device(), &desc, &w);
    INFO("type " << apr_test::ref_type_name(t) << (claims ? " (claimed)" : " (not claimed)")
                 << ": status " << s << " " << p.error());
    if (s == APR_OK) api.weight_free(p.device(), w);
    REQUIRE(s == (claims ? APR_OK : APR_ERR_UNSUPPORTED));
  }
  conformance::note("claims " + claimed);
  apr_device_caps bad{};
  bad.struct_size = sizeof bad;
  REQUIRE(api.device_caps(api.device_count(), &bad) != APR_OK);  // no such device
  REQUIRE(api.device_caps(p.device_index(), nullptr) != APR_OK);
  // Step markers come in pairs.
  REQUIRE((api.step_begin == nullptr) == (api.step_end == nullptr));
}
