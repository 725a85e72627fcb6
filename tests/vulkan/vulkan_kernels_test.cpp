// SPDX-License-Identifier: MIT
// What only the Vulkan plugin needs checked, run on lavapipe: attention over more keys than one
// 64-key tile of attention.comp (untraced and traced), a chain of dependent kernels longer than one
// batch (the early submit at 1024 commands, a second descriptor pool past 512 sets), and grids
// wider than one dispatch dimension (65535 workgroups) for matmul and add.
//
// Everything else — each kernel against its float64 reference for every weight type, in place
// and strided, argument refusals, trace_emit views and refusing sinks — is the conformance
// suite's (core/conformance), run against this plugin as kernels_vulkan and plugin_check_vulkan.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "common/plugin_under_test.hpp"
#include "common/trace_recorder.hpp"
#include "conformance/ref_dequant.hpp"
#include "conformance/reference_ops.hpp"

using apr_test::download;
using apr_test::upload;

namespace {

apr::Device& device() {
  return apr_test::plugin().device();
}

// n random values uniform in [-scale, scale], never all zero.
std::vector<float> random_floats(uint64_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> out(n);
  for (auto& v : out) v = dist(rng);
  out[0] = scale * 0.5f;
  return out;
}

}  // namespace

TEST_CASE(
    "vulkan attention over more than one 64-key tile matches a float64 causal GQA reference") {
  // 73 visible keys: attention.comp scores 64 keys per tile, so the online softmax spans two.
  const uint32_t n_heads = 4, n_kv_heads = 2, head_dim = 32, pos0 = 70, n_rows = 3;
  const uint32_t kv_dim = n_kv_heads * head_dim, n_ctx = 80, n_kv = pos0 + n_rows;
  const uint32_t src_stride = kv_dim + 2, q_stride = n_heads * head_dim + 6;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  const std::vector<float> k_all = random_floats(n_kv * src_stride, 61);
  const std::vector<float> v_all = random_floats(n_kv * src_stride, 62);
  const std::vector<float> q = random_floats(n_rows * q_stride, 63, 2.0f);
  apr::Device& dev = device();
  apr::Buffer kb = upload(dev, k_all), vb = upload(dev, v_all), qb = upload(dev, q);
  apr::Buffer kc = dev.alloc(n_ctx * kv_dim * 4), vc = dev.alloc(n_ctx * kv_dim * 4);
  apr::Buffer out = dev.alloc(n_rows * n_heads * head_dim * 4);

  // The history rows in one call, then the current rows in a second, as a session would.
  for (auto [first, count] : {std::pair<uint32_t, uint32_t>{0, pos0}, {pos0, n_rows}}) {
    auto s = apr::abi_struct<apr_kv_store_args>();
    s.k = kb.get();
    s.v = vb.get();
    s.k_offset = s.v_offset = uint64_t(first) * src_stride * 4;
    s.src_row_stride = src_stride;
    s.n_rows = count;
    s.kv_dim = kv_dim;
    s.pos0 = first;
    s.k_cache = kc.get();
    s.v_cache = vc.get();
    dev.kv_store(s);
  }

  // Untraced, then with scores and softmax asked for: both outputs must match the reference.
  const auto run = [&](apr_test::TraceRecorder* trace) {
    std::unique_ptr<apr_test::ScopedTraceSink> sink;
    if (trace) sink = std::make_unique<apr_test::ScopedTraceSink>(dev, *trace);
    auto a = apr::abi_struct<apr_attention_args>();
    a.q = qb.get();
    a.q_row_stride = q_stride;
    a.n_rows = n_rows;
    a.pos0 = pos0;
    a.n_heads = n_heads;
    a.n_kv_heads = n_kv_heads;
    a.head_dim = head_dim;
    a.scale = scale;
    a.layer = 4;
    a.k_cache = kc.get();
    a.v_cache = vc.get();
    a.out = out.get();
    dev.attention(a);
    return download(dev, out);
  };
  const std::vector<float> untraced = run(nullptr);
  apr_test::TraceRecorder trace;
  trace.want(APR_STAGE_ATTN_SCORES);
  trace.want(APR_STAGE_ATTN_SOFTMAX);
  const std::vector<float> traced = run(&trace);
  const apr_test::TraceRecorder::Tensor* scores = trace.find(APR_STAGE_ATTN_SCORES);
  const apr_test::TraceRecorder::Tensor* probs = trace.find(APR_STAGE_ATTN_SOFTMAX);
  REQUIRE(trace.emitted.size() == 2);
  REQUIRE(trace.bad_emits == 0);
  REQUIRE(scores != nullptr);
  REQUIRE(probs != nullptr);
  for (const auto& t : trace.emitted) {
    CHECK(t.layer == 4u);
    REQUIRE(t.shape == std::vector<uint64_t>{n_heads, n_rows, n_kv});
  }

  const kernel_tests::RefAttention ref =
      kernel_tests::ref_attention(q.data(), q_stride, k_all.data(), v_all.data(), src_stride,
                                  n_rows, pos0, n_heads, n_kv_heads, head_dim, scale);
  for (size_t i = 0; i < ref.scores.size(); ++i) {
    INFO("(head, row, key) flat index " << i);
    REQUIRE(std::fabs(scores->data[i] - ref.scores[i]) <= 2e-6 * (1 + std::fabs(ref.scores[i])));
    REQUIRE(std::fabs(probs->data[i] - ref.probs[i]) <= 2e-6 * ref.probs[i] + 1e-9);
  }
  for (size_t i = 0; i < ref.out.size(); ++i) {
    INFO("(row, head, dim) flat index " << i);
    REQUIRE(std::fabs(untraced[i] - ref.out[i]) <= 4e-6 * ref.out_magnitude[i] + 1e-9);
    REQUIRE(std::fabs(traced[i] - ref.out[i]) <= 4e-6 * ref.out_magnitude[i] + 1e-9);
  }
}

TEST_CASE("vulkan runs a chain of dependent kernels longer than one batch, read once at the end") {
  // 1100 dependent adds, recorded without a read: more than the 1024 commands after which a
  // batch is submitted early and more than the 512 descriptor sets of one pool. Each add must
  // see the previous one's result across barriers and across the early submit. The increments
  // are multiples of 1/4 below 2, so every partial sum is exact in f32.
  const uint64_t n = 257;
  const int steps = 1100;
  std::vector<float> inc(n);
  for (uint64_t i = 0; i < n; ++i) inc[i] = 0.25f * float(1 + i % 7);
  apr::Device& dev = device();
  apr::Buffer acc = upload(dev, std::vector<float>(n, 0.0f)), step = upload(dev, inc);
  auto a = apr::abi_struct<apr_add_args>();
  a.a = acc.get();
  a.b = step.get();
  a.out = acc.get();
  a.n = n;
  for (int i = 0; i < steps; ++i) dev.add(a);
  const std::vector<float> got = download(dev, acc);
  uint64_t wrong = 0;
  for (uint64_t i = 0; i < n; ++i) wrong += got[i] != float(steps) * inc[i];
  CHECK(wrong == 0u);
}

TEST_CASE("vulkan matmul and add cover grids wider than one dispatch dimension") {
  // 70000 outputs need more workgroups than the 65535 one grid dimension is guaranteed to hold.
  const uint64_t n_cols = 32, n_out = 70000;
  std::mt19937_64 rng(101);
  const std::vector<uint8_t> blocks = apr_test::random_blocks(apr_test::kQ4_0, n_cols * n_out, rng);
  const std::vector<float> x = random_floats(n_cols, 102);
  apr::Device& dev = device();
  apr::Weight w = apr_test::upload_weight(dev, APR_TYPE_Q4_0, n_out, n_cols, blocks);
  apr::Buffer xb = upload(dev, x), yb = dev.alloc(n_out * 4);
  auto a = apr::abi_struct<apr_matmul_args>();
  a.weight = w.get();
  a.x = xb.get();
  a.n_rows = 1;
  a.y = yb.get();
  dev.matmul(a);
  const std::vector<float> y = download(dev, yb);
  const uint64_t row_bytes = blocks.size() / n_out;
  for (uint64_t o = 0; o < n_out; ++o) {
    double ref = 0, magnitude = 0;
    for (uint64_t c = 0; c < n_cols; ++c) {
      const double term =
          apr_test::ref_element(apr_test::kQ4_0, blocks.data() + o * row_bytes, c) * x[c];
      ref += term;
      magnitude += std::fabs(term);
    }
    INFO("out " << o);
    REQUIRE(std::fabs(y[o] - ref) <= 4e-6 * magnitude + 1e-30);
  }

  // 2^24 + 300 elements: 65537 workgroups of 256.
  const uint64_t n = (uint64_t(1) << 24) + 300;
  std::vector<float> av(n), bv(n);
  for (uint64_t i = 0; i < n; ++i) {
    av[i] = float(i % 1000);
    bv[i] = float(i / 1000);
  }
  apr::Buffer ab = upload(dev, av), bb = upload(dev, bv);
  auto add = apr::abi_struct<apr_add_args>();
  add.a = ab.get();
  add.b = bb.get();
  add.out = ab.get();
  add.n = n;
  dev.add(add);
  const std::vector<float> sum = download(dev, ab);
  uint64_t wrong = 0;
  for (uint64_t i = 0; i < n; ++i) wrong += sum[i] != float(i % 1000) + float(i / 1000);
  CHECK(wrong == 0u);
}
