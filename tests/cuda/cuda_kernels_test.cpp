// SPDX-License-Identifier: MIT
// What only the CUDA plugin needs checked, on a GPU: matmul around its kernel switch (the
// matrix-vector kernel in groups of 4 rows up to 8 rows, the tiled kernel with 64-wide tiles
// above) for every weight type; attention over more keys than one 128-key pass of the fused
// online-softmax kernel and of the traced probe/apply kernels; and trace_emit's two host copies
// (one plain copy for packed views and single rows, a 2-D copy for strided views) through its
// reused staging buffer. References are float64, weights decoded by conformance/ref_dequant.hpp.
//
// Everything else — each kernel against its float64 reference for every weight type, in place
// and strided, argument refusals, trace views and refusing sinks — is the conformance suite's
// (core/conformance), run against this plugin as kernels_cuda and plugin_check_cuda.
//
// Without a GPU (and none expected, cuda_gpu.hpp) each test records a skip and returns: the
// program then exits 77 (tests/common/skip_main.cpp), which CTest reports as skipped. With
// APR_EXPECT_CUDA_GPU=1 a missing device is a failure.
//
// Tolerances: sums of many f32 products are bounded relative to the sum of absolute terms,
// |got - ref| <= 1e-5 * sum|terms| + 1e-6.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/plugin_under_test.hpp"
#include "common/trace_recorder.hpp"
#include "conformance/ref_dequant.hpp"
#include "conformance/reference_ops.hpp"
#include "cuda/cuda_gpu.hpp"

using apr_test::download;
using apr_test::upload;
using cuda_test::gpu;
using cuda_test::kSentinel;
using cuda_test::random_floats;

TEST_CASE("cuda matmul across the matvec/tiled switch and 64-wide tiles, for every weight type") {
  apr::Device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(20261125);
  // 70 outputs and 70 rows cross the tiled kernel's 64-wide tiles; 6 rows fill one 4-row matvec
  // group and part of the next, 8 rows are the matvec kernel's last count and 9 the tiled one's
  // first.
  const uint64_t n_out = 70;
  for (uint32_t type : apr_test::ref_types()) {
    // Float types get a width that fills neither a 16-element chunk nor a 32-deep tile slice.
    const uint64_t k = apr_test::block_size(type) == 1 ? 77 : 512;
    const std::vector<uint8_t> blocks = apr_test::random_blocks(type, n_out * k, rng);
    const uint64_t row_bytes = blocks.size() / n_out;
    apr::Weight w = apr_test::upload_weight(*dev, type, n_out, k, blocks);
    std::vector<double> dense(n_out * k);
    for (uint64_t o = 0; o < n_out; ++o)
      for (uint64_t i = 0; i < k; ++i)
        dense[o * k + i] = apr_test::ref_element(type, blocks.data() + o * row_bytes, i);
    const std::vector<float> bias = random_floats(n_out, rng);
    apr::Buffer bias_buf = upload(*dev, bias);
    for (uint32_t n_rows : {6u, 8u, 9u, 70u}) {
      for (bool strided : {false, true}) {
        INFO(apr_test::ref_type_name(type) << " rows " << n_rows << (strided ? " strided" : ""));
        const uint32_t xs = strided ? uint32_t(k + 3) : 0, ys = strided ? uint32_t(n_out + 5) : 0;
        const uint64_t x_stride = xs ? xs : k, y_stride = ys ? ys : n_out;
        const std::vector<float> x = random_floats(n_rows * x_stride, rng);
        apr::Buffer xb = upload(*dev, x);
        apr::Buffer yb = upload(*dev, std::vector<float>(n_rows * y_stride, kSentinel));
        auto a = apr::abi_struct<apr_matmul_args>();
        a.weight = w.get();
        a.x = xb.get();
        a.x_row_stride = xs;
        a.n_rows = n_rows;
        a.bias = strided ? bias_buf.get() : nullptr;
        a.y = yb.get();
        a.y_row_stride = ys;
        dev->matmul(a);
        const std::vector<float> y = download(*dev, yb);
        for (uint32_t r = 0; r < n_rows; ++r) {
          for (uint64_t o = 0; o < y_stride; ++o) {
            const float got = y[r * y_stride + o];
            if (o >= n_out) {
              REQUIRE(got == kSentinel);  // the stride gap is not written
              continue;
            }
            double ref = strided ? bias[o] : 0.0, mag = std::fabs(ref);
            for (uint64_t i = 0; i < k; ++i) {
              ref += dense[o * k + i] * x[r * x_stride + i];
              mag += std::fabs(dense[o * k + i] * x[r * x_stride + i]);
            }
            INFO("row " << r << " out " << o << " ref " << ref << " got " << got);
            REQUIRE(std::fabs(got - ref) <= 1e-5 * mag + 1e-6);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda attention over more than one 128-key pass matches a float64 reference") {
  apr::Device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(9);
  // 153 keys for the last row: the fused kernel scores 128 keys per pass of its online softmax,
  // and the traced kernels reduce over more keys than their 128 threads. head_dim 80 leaves
  // lanes of the last warp idle.
  const uint32_t heads = 4, kv_heads = 2, hd = 80, kv_dim = kv_heads * hd, n_ctx = 300;
  const uint32_t pos0 = 150, rows = 3, n_kv = pos0 + rows;
  const float scale = 1.0f / std::sqrt(float(hd));
  std::vector<float> k = random_floats(size_t(n_ctx) * kv_dim, rng);
  std::vector<float> v = random_floats(size_t(n_ctx) * kv_dim, rng);
  // Cache rows past the attended context must not be read: poison them.
  for (size_t i = size_t(n_kv) * kv_dim; i < k.size(); ++i) k[i] = v[i] = std::nanf("");
  const std::vector<float> q = random_floats(rows * heads * hd, rng, -2, 2);
  apr::Buffer kc = upload(*dev, k), vc = upload(*dev, v), qb = upload(*dev, q);
  apr::Buffer ob = dev->alloc(rows * heads * hd * 4);

  const auto run = [&](apr_test::TraceRecorder* trace) {
    std::unique_ptr<apr_test::ScopedTraceSink> sink;
    if (trace) sink = std::make_unique<apr_test::ScopedTraceSink>(*dev, *trace);
    auto a = apr::abi_struct<apr_attention_args>();
    a.q = qb.get();
    a.n_rows = rows;
    a.pos0 = pos0;
    a.n_heads = heads;
    a.n_kv_heads = kv_heads;
    a.head_dim = hd;
    a.scale = scale;
    a.layer = 1;
    a.k_cache = kc.get();
    a.v_cache = vc.get();
    a.out = ob.get();
    dev->attention(a);
    return download(*dev, ob);
  };
  const std::vector<float> fused = run(nullptr);  // no stage wanted: the fused kernel
  apr_test::TraceRecorder trace;
  trace.want(APR_STAGE_ATTN_SCORES);
  trace.want(APR_STAGE_ATTN_SOFTMAX);
  const std::vector<float> traced = run(&trace);  // the probe and apply kernels
  const apr_test::TraceRecorder::Tensor* scores = trace.find(APR_STAGE_ATTN_SCORES);
  const apr_test::TraceRecorder::Tensor* probs = trace.find(APR_STAGE_ATTN_SOFTMAX);
  REQUIRE(trace.emitted.size() == 2);
  REQUIRE(trace.bad_emits == 0);
  REQUIRE(scores != nullptr);
  REQUIRE(probs != nullptr);
  for (const auto& t : trace.emitted) {
    CHECK(t.layer == 1u);
    REQUIRE(t.shape == std::vector<uint64_t>{heads, rows, n_kv});
  }

  const kernel_tests::RefAttention ref = kernel_tests::ref_attention(
      q.data(), heads * hd, k.data(), v.data(), kv_dim, rows, pos0, heads, kv_heads, hd, scale);
  for (size_t i = 0; i < ref.scores.size(); ++i) {
    INFO("(head, row, key) flat index " << i);
    // Keys past a row's own position are masked: exactly 0 in both traced grids.
    REQUIRE(std::fabs(scores->data[i] - ref.scores[i]) <= 1e-5 * ref.score_magnitude[i] + 1e-6);
    REQUIRE(std::fabs(probs->data[i] - ref.probs[i]) <= 1e-5 * ref.probs[i] + 1e-7);
    const size_t key = i % n_kv, row = i / n_kv % rows;
    if (key > pos0 + row) REQUIRE((scores->data[i] == 0.0f && probs->data[i] == 0.0f));
  }
  for (size_t i = 0; i < ref.out.size(); ++i) {
    INFO("(row, head, dim) flat index " << i);
    REQUIRE(std::fabs(fused[i] - ref.out[i]) <= 1e-5 * ref.out_magnitude[i] + 1e-6);
    REQUIRE(std::fabs(traced[i] - ref.out[i]) <= 1e-5 * ref.out_magnitude[i] + 1e-6);
  }
}

TEST_CASE("cuda trace_emit copies packed views and single rows whole, strided views in 2-D") {
  apr::Device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(3);
  const std::vector<float> data = random_floats(72, rng);
  apr::Buffer b = upload(*dev, data);
  apr_test::TraceRecorder trace;
  trace.want(APR_STAGE_ATTN_OUT);
  trace.want(APR_STAGE_FFN_OUT);
  trace.want(APR_STAGE_LM_HEAD);
  {
    apr_test::ScopedTraceSink sink(*dev, trace);
    auto a = apr::abi_struct<apr_trace_emit_args>();
    a.buffer = b.get();
    // 3 x 6 floats from float 2 on, rows 10 apart: a 2-D copy.
    a.stage = APR_STAGE_ATTN_OUT;
    a.layer = 2;
    a.offset = 2 * 4;
    a.n_rows = 3;
    a.n_cols = 6;
    a.row_stride = 10;
    dev->trace_emit(a);
    // 5 packed rows of 12 from float 1 on: one plain copy, into a larger staging buffer.
    a.stage = APR_STAGE_FFN_OUT;
    a.offset = 1 * 4;
    a.n_rows = 5;
    a.n_cols = 12;
    a.row_stride = 0;
    dev->trace_emit(a);
    // The first row of the strided view: one plain copy into the reused staging.
    a.stage = APR_STAGE_LM_HEAD;
    a.layer = APR_LAYER_NONE;
    a.offset = 2 * 4;
    a.n_rows = 1;
    a.n_cols = 6;
    a.row_stride = 10;
    dev->trace_emit(a);
  }
  REQUIRE(trace.emitted.size() == 3);
  REQUIRE(trace.bad_emits == 0);
  const auto* strided = trace.find(APR_STAGE_ATTN_OUT);
  const auto* packed = trace.find(APR_STAGE_FFN_OUT);
  const auto* head = trace.find(APR_STAGE_LM_HEAD);
  REQUIRE(strided != nullptr);
  REQUIRE(packed != nullptr);
  REQUIRE(head != nullptr);
  REQUIRE(strided->shape == std::vector<uint64_t>{3, 6});
  REQUIRE(packed->shape == std::vector<uint64_t>{5, 12});
  REQUIRE(head->shape == std::vector<uint64_t>{6});
  uint64_t wrong = 0;
  for (uint32_t r = 0; r < 3; ++r)
    for (uint32_t c = 0; c < 6; ++c) wrong += strided->data[r * 6 + c] != data[2 + r * 10 + c];
  for (uint32_t i = 0; i < 60; ++i) wrong += packed->data[i] != data[1 + i];
  for (uint32_t c = 0; c < 6; ++c) wrong += head->data[c] != data[2 + c];
  CHECK(wrong == 0u);
}
