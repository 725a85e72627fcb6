// SPDX-License-Identifier: MIT
// The CUDA plugin's operations of ABI 1.3 (qwen3, gemma2, gemma3, phi3), on a GPU, each against a
// float64 reference written here (independent of the plugin and of core/conformance):
//  - rms_norm in groups of strided rows (the per-head QK-norm), out of place and in place, groups
//    shorter than a warp's multiple and longer than the kernel's 256-thread block;
//  - attention with a sliding window (over more than one 128-key pass of the fused kernel, and in
//    a prefill whose first rows see fewer keys than the window) and with a score soft-cap, fused
//    and traced: output, ATTN_SCORES (soft-capped) and ATTN_SOFTMAX, masked entries exactly 0,
//    cache rows outside every window poisoned with NaN so that reading one shows;
//  - the GELU-gated FFN: FFN_GELU emitted (not FFN_SILU), the output the product of exactly the
//    emitted activation and up (plugin.h's tracing rule), in place over gate;
//  - unary scale and soft-cap, out of place and in place, nothing written outside the view;
//  - device_caps naming the four features.
// A 1.2 host's struct (struct_size without the 1.3 members, junk in them) must get the 1.2
// behaviour. Data is random and never all zero.
//
// Without a GPU (and none expected, cuda_gpu.hpp) each test records a skip and returns: the
// program then exits 77 (tests/common/skip_main.cpp), which CTest reports as skipped.
//
// Tolerances (f32 against float64):
//  - rms_norm: |got - ref| <= 1e-5 |ref| + 1e-6 (the kernel sums squares in double and rounds
//    a handful of times in f32, about 6e-7 relative);
//  - attention: scores 1e-5 * scale * sum|q_d k_d| + 2e-6 |ref| + 1e-6 (the dot product's rounding,
//    then the soft-cap's divide, tanhf and multiply, whose slope is at most 1); probabilities
//    1e-5 p + 1e-7; outputs 1e-5 * sum|p_t v_t| + 1e-6;
//  - gelu: 1e-5 |ref| + 2e-7 (1 + |z|), which holds for the tanh form as written in plugin.h
//    (1 + tanh(u) rounds with an absolute error of an f32 ulp of 1, times 0.5 |z|) and for its
//    logistic form; the product with up: that bound times |up| plus 1e-5 |ref|;
//  - unary scale: exact (an f32 product of two floats is the float64 product rounded once);
//    unary soft-cap: 1e-5 |ref| + 1e-7.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/plugin_under_test.hpp"
#include "common/trace_recorder.hpp"
#include "cuda/cuda_gpu.hpp"

using apr_test::download;
using apr_test::upload;
using cuda_test::gpu;
using cuda_test::kSentinel;
using cuda_test::random_floats;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct NormCase {
  const char* name;
  uint32_t n_rows, n_groups, group_cols, row_stride;  // row_stride 0: packed
  bool in_place;
};

struct AttnRef {
  std::vector<double> scores, probs, score_mag;  // heads x rows x n_kv; masked entries 0
  std::vector<double> out, out_mag;              // rows x (heads * head_dim)
  double max_cap_effect = 0;                     // max |s - softcap(s)| over visible scores
};

// plugin.h: row r at p = pos0 + r sees keys j <= p with p - j < window (window 0: all), scores
// s = scale q.k, then c tanh(s / c) when c > 0, then the mask and the softmax.
AttnRef ref_attention(const std::vector<float>& q, const std::vector<float>& k,
                      const std::vector<float>& v, uint32_t rows, uint32_t pos0, uint32_t heads,
                      uint32_t kv_heads, uint32_t hd, double scale, uint32_t window,
                      double softcap) {
  const uint32_t n_kv = pos0 + rows, kv_dim = kv_heads * hd, q_width = heads * hd;
  AttnRef a;
  const size_t grid = size_t(heads) * rows * n_kv;
  a.scores.assign(grid, 0.0);
  a.probs.assign(grid, 0.0);
  a.score_mag.assign(grid, 0.0);
  a.out.assign(size_t(rows) * q_width, 0.0);
  a.out_mag.assign(a.out.size(), 0.0);
  for (uint32_t h = 0; h < heads; ++h) {
    const uint32_t g = h / (heads / kv_heads);
    for (uint32_t r = 0; r < rows; ++r) {
      const uint32_t p = pos0 + r;
      const uint32_t lo = window != 0 && p + 1 > window ? p + 1 - window : 0;
      const size_t row = (size_t(h) * rows + r) * n_kv;
      double mx = -INFINITY;
      for (uint32_t t = lo; t <= p; ++t) {
        double dot = 0, mag = 0;
        for (uint32_t d = 0; d < hd; ++d) {
          const double term = double(q[size_t(r) * q_width + h * hd + d]) *
                              double(k[size_t(t) * kv_dim + g * hd + d]);
          dot += term;
          mag += std::fabs(term);
        }
        double s = scale * dot;
        if (softcap > 0) {
          const double capped = softcap * std::tanh(s / softcap);
          a.max_cap_effect = std::max(a.max_cap_effect, std::fabs(s - capped));
          s = capped;
        }
        a.scores[row + t] = s;
        a.score_mag[row + t] = scale * mag;
        mx = std::max(mx, s);
      }
      double sum = 0;
      for (uint32_t t = lo; t <= p; ++t) sum += std::exp(a.scores[row + t] - mx);
      for (uint32_t t = lo; t <= p; ++t) a.probs[row + t] = std::exp(a.scores[row + t] - mx) / sum;
      for (uint32_t d = 0; d < hd; ++d) {
        double o = 0, m = 0;
        for (uint32_t t = lo; t <= p; ++t) {
          const double term = a.probs[row + t] * double(v[size_t(t) * kv_dim + g * hd + d]);
          o += term;
          m += std::fabs(term);
        }
        a.out[size_t(r) * q_width + h * hd + d] = o;
        a.out_mag[size_t(r) * q_width + h * hd + d] = m;
      }
    }
  }
  return a;
}

struct AttnCase {
  const char* name;
  uint32_t pos0, rows, window;
  float softcap;
  bool v1_2_struct;  // window and softcap lie outside struct_size: plain causal attention
};

double gelu_ref(double z) {
  const double u = std::sqrt(2.0 / std::acos(-1.0)) * (z + 0.044715 * z * z * z);
  return 0.5 * z * (1.0 + std::tanh(u));
}

double silu_ref(double z) {
  return z / (1.0 + std::exp(-z));
}

}  // namespace

// ---- rms_norm in groups

TEST_CASE("cuda rms_norm normalises each group of strided rows on its own") {
  apr::Device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(1303);
  const float eps = 1e-6f;
  const NormCase cases[] = {
      // qwen3's QK-norm shape: heads of 40 (a warp and a part) inside a [q|k|v] row.
      {"4 groups of 40, stride 171", 3, 4, 40, 171, false},
      {"4 groups of 40, stride 171, in place", 3, 4, 40, 171, true},
      // Groups longer than the kernel's 256-thread block.
      {"2 groups of 300, stride 611", 2, 2, 300, 611, false},
      // Groups shorter than a warp.
      {"16 groups of 8, packed, in place", 5, 16, 8, 0, true},
      // One group, rows strided: the whole-row norm over a strided view.
      {"1 group of 1000, stride 1003", 2, 1, 1000, 1003, false},
  };
  for (const NormCase& c : cases) {
    INFO(c.name);
    const uint32_t n_cols = c.n_groups * c.group_cols;
    const uint32_t stride = c.row_stride ? c.row_stride : n_cols;
    const uint64_t x_off = 4, w_off = 3;  // floats
    // Every group scaled differently, so a norm over the whole row (or the wrong group) is far off.
    std::vector<float> x = random_floats(x_off + uint64_t{c.n_rows} * stride, rng, -2, 2);
    for (uint32_t r = 0; r < c.n_rows; ++r)
      for (uint32_t g = 0; g < c.n_groups; ++g)
        for (uint32_t i = 0; i < c.group_cols; ++i)
          x[x_off + uint64_t{r} * stride + g * c.group_cols + i] *= 0.25f + 0.5f * g;
    std::vector<float> w = random_floats(w_off + c.group_cols, rng, 0.5f, 1.5f);
    apr::Buffer xb = upload(*dev, x), wb = upload(*dev, w);
    apr::Buffer ob = upload(*dev, std::vector<float>(x.size(), kSentinel));
    auto a = apr::abi_struct<apr_rms_norm_args>();
    a.x = xb.get();
    a.x_offset = x_off * 4;
    a.weight = wb.get();
    a.weight_offset = w_off * 4;
    a.out = c.in_place ? xb.get() : ob.get();
    a.out_offset = x_off * 4;
    a.n_rows = c.n_rows;
    a.n_cols = n_cols;
    a.eps = eps;
    a.row_stride = c.row_stride;
    a.n_groups = c.n_groups;
    dev->rms_norm(a);
    const std::vector<float> got = download(*dev, c.in_place ? xb : ob);
    REQUIRE(got.size() == x.size());
    uint64_t checked = 0;
    for (uint64_t i = 0; i < x_off; ++i)
      REQUIRE(got[i] == (c.in_place ? x[i] : kSentinel));  // before the view: untouched
    for (uint32_t r = 0; r < c.n_rows; ++r) {
      const uint64_t row = x_off + uint64_t{r} * stride;
      for (uint32_t g = 0; g < c.n_groups; ++g) {
        const uint64_t base = row + uint64_t{g} * c.group_cols;
        double ss = 0;
        for (uint32_t i = 0; i < c.group_cols; ++i) ss += double(x[base + i]) * x[base + i];
        const double inv = 1.0 / std::sqrt(ss / c.group_cols + eps);
        for (uint32_t i = 0; i < c.group_cols; ++i) {
          const double ref = double(x[base + i]) * inv * double(w[w_off + i]);
          INFO("row " << r << " group " << g << " col " << i << " ref " << ref << " got "
                      << got[base + i]);
          REQUIRE(std::fabs(got[base + i] - ref) <= 1e-5 * std::fabs(ref) + 1e-6);
          ++checked;
        }
      }
      // The stride's gap after the row's n_cols is not written.
      for (uint64_t i = row + n_cols; i < row + stride; ++i) {
        INFO("gap element " << i);
        REQUIRE(got[i] == (c.in_place ? x[i] : kSentinel));
      }
    }
    CHECK(checked == uint64_t{c.n_rows} * n_cols);
  }
}

TEST_CASE("cuda rms_norm of a 1.2 host's struct normalises whole packed rows") {
  apr::Device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(12);
  const uint32_t rows = 3, cols = 96;
  const std::vector<float> x = random_floats(rows * cols, rng, -3, 3);
  const std::vector<float> w = random_floats(cols, rng, 0.5f, 1.5f);
  apr::Buffer xb = upload(*dev, x), wb = upload(*dev, w), ob = dev->alloc(x.size() * 4);
  auto a = apr::abi_struct<apr_rms_norm_args>();
  a.struct_size = APR_RMS_NORM_ARGS_SIZE_V1_2;
  a.x = xb.get();
  a.weight = wb.get();
  a.out = ob.get();
  a.n_rows = rows;
  a.n_cols = cols;
  a.eps = 1e-5f;
  a.row_stride = 7;  // outside the 1.2 struct: must not be read
  a.n_groups = 5;
  dev->rms_norm(a);
  const std::vector<float> got = download(*dev, ob);
  for (uint32_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (uint32_t c = 0; c < cols; ++c) ss += double(x[r * cols + c]) * x[r * cols + c];
    const double inv = 1.0 / std::sqrt(ss / cols + 1e-5);
    for (uint32_t c = 0; c < cols; ++c) {
      const double ref = double(x[r * cols + c]) * inv * w[c];
      INFO("row " << r << " col " << c);
      REQUIRE(std::fabs(got[r * cols + c] - ref) <= 1e-5 * std::fabs(ref) + 1e-6);
    }
  }
}

// ---- attention with a window and a soft-cap

TEST_CASE("cuda attention with a sliding window and a soft-cap matches a float64 reference") {
  apr::Device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(20250613);
  const uint32_t heads = 4, kv_heads = 2, hd = 80, kv_dim = kv_heads * hd, n_ctx = 300;
  const float scale = 1.0f / std::sqrt(float(hd));
  const AttnCase cases[] = {
      // 140 keys from key 11..13 on: two 128-key passes of the fused kernel, neither from 0.
      {"window 140 at pos0 150", 150, 3, 140, 0.0f, false},
      {"soft-cap 1 at pos0 150", 150, 3, 0, 1.0f, false},
      // A prefill: rows 0..6 see fewer keys than the window, later rows exactly 7.
      {"window 7 and soft-cap 1.5, prefill of 24", 0, 24, 7, 1.5f, false},
      // Each row sees only itself: out is its own v row.
      {"window 1 at pos0 40", 40, 2, 1, 0.0f, false},
      // A window larger than the context is no window.
      {"window 1000 at pos0 20", 20, 4, 1000, 0.0f, false},
      {"a 1.2 struct with window 5 and soft-cap 1 beyond its size", 150, 3, 5, 1.0f, true},
  };
  for (const AttnCase& c : cases) {
    INFO(c.name);
    const uint32_t rows = c.rows, pos0 = c.pos0, n_kv = pos0 + rows;
    const uint32_t window = c.v1_2_struct ? 0 : c.window;
    const double softcap = c.v1_2_struct ? 0.0 : c.softcap;
    std::vector<float> k = random_floats(size_t(n_ctx) * kv_dim, rng);
    std::vector<float> v = random_floats(size_t(n_ctx) * kv_dim, rng);
    // Rows no query sees must not be read: those past the context and those before the first
    // row's window.
    const uint32_t first_seen = window != 0 && pos0 + 1 > window ? pos0 + 1 - window : 0;
    for (size_t i = 0; i < k.size(); ++i) {
      const size_t t = i / kv_dim;
      if (t < first_seen || t >= n_kv) k[i] = v[i] = kNaN;
    }
    const std::vector<float> q = random_floats(size_t(rows) * heads * hd, rng, -4, 4);
    apr::Buffer kc = upload(*dev, k), vc = upload(*dev, v), qb = upload(*dev, q);
    apr::Buffer ob = dev->alloc(uint64_t{rows} * heads * hd * 4);

    const auto run = [&](apr_test::TraceRecorder* trace) {
      std::unique_ptr<apr_test::ScopedTraceSink> sink;
      if (trace) sink = std::make_unique<apr_test::ScopedTraceSink>(*dev, *trace);
      auto a = apr::abi_struct<apr_attention_args>();
      if (c.v1_2_struct) a.struct_size = APR_ATTENTION_ARGS_SIZE_V1_2;
      a.q = qb.get();
      a.n_rows = rows;
      a.pos0 = pos0;
      a.n_heads = heads;
      a.n_kv_heads = kv_heads;
      a.head_dim = hd;
      a.scale = scale;
      a.layer = 2;
      a.k_cache = kc.get();
      a.v_cache = vc.get();
      a.out = ob.get();
      a.window = c.window;
      a.softcap = c.softcap;
      dev->attention(a);
      return download(*dev, ob);
    };
    const std::vector<float> fused = run(nullptr);
    apr_test::TraceRecorder trace;
    trace.want(APR_STAGE_ATTN_SCORES);
    trace.want(APR_STAGE_ATTN_SOFTMAX);
    const std::vector<float> traced = run(&trace);
    REQUIRE(trace.emitted.size() == 2);
    REQUIRE(trace.bad_emits == 0);
    const auto* scores = trace.find(APR_STAGE_ATTN_SCORES);
    const auto* probs = trace.find(APR_STAGE_ATTN_SOFTMAX);
    REQUIRE(scores != nullptr);
    REQUIRE(probs != nullptr);
    for (const auto& t : trace.emitted) {
      CHECK(t.layer == 2u);
      REQUIRE(t.shape == std::vector<uint64_t>{heads, rows, n_kv});
    }

    const AttnRef ref =
        ref_attention(q, k, v, rows, pos0, heads, kv_heads, hd, scale, window, softcap);
    // The soft-cap cases must exercise it: some score moves by more than the tolerance.
    if (softcap > 0) REQUIRE(ref.max_cap_effect > 0.1);
    uint64_t masked = 0;
    for (size_t i = 0; i < ref.scores.size(); ++i) {
      const size_t key = i % n_kv, row = i / n_kv % rows, p = pos0 + row;
      const bool visible = key <= p && (window == 0 || p - key < window);
      INFO("(head, row, key) flat index " << i << " ref score " << ref.scores[i] << " got "
                                          << scores->data[i] << " ref p " << ref.probs[i] << " got "
                                          << probs->data[i]);
      if (!visible) {
        REQUIRE((scores->data[i] == 0.0f && probs->data[i] == 0.0f));
        ++masked;
        continue;
      }
      REQUIRE(std::fabs(scores->data[i] - ref.scores[i]) <=
              1e-5 * ref.score_mag[i] + 2e-6 * std::fabs(ref.scores[i]) + 1e-6);
      REQUIRE(std::fabs(probs->data[i] - ref.probs[i]) <= 1e-5 * ref.probs[i] + 1e-7);
    }
    // The windowed cases mask more than the causal triangle.
    if (window != 0 && window < n_kv) CHECK(masked > uint64_t{heads} * rows * (rows - 1) / 2);
    for (size_t i = 0; i < ref.out.size(); ++i) {
      INFO("(row, head, dim) flat index " << i << " ref " << ref.out[i] << " fused " << fused[i]
                                          << " traced " << traced[i]);
      REQUIRE(std::fabs(fused[i] - ref.out[i]) <= 1e-5 * ref.out_mag[i] + 1e-6);
      REQUIRE(std::fabs(traced[i] - ref.out[i]) <= 1e-5 * ref.out_mag[i] + 1e-6);
    }
  }
}

// ---- the GELU-gated FFN

TEST_CASE("cuda swiglu with the GELU activation emits FFN_GELU, the value its output used") {
  apr::Device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(77);
  const uint32_t rows = 5, cols = 333, layer = 3;
  const size_t n = size_t(rows) * cols;
  const std::vector<float> gate = random_floats(n, rng, -6, 6);
  const std::vector<float> up = random_floats(n, rng, -2, 2);
  apr::Buffer ub = upload(*dev, up);
  const auto args = [&](const apr::Buffer& g, const apr::Buffer& out) {
    auto a = apr::abi_struct<apr_swiglu_args>();
    a.gate = g.get();
    a.up = ub.get();
    a.out = out.get();
    a.n_rows = rows;
    a.n_cols = cols;
    a.layer = layer;
    a.activation = APR_ACT_GELU_TANH;
    return a;
  };

  // Untraced, out of place.
  apr::Buffer gb = upload(*dev, gate), ob = dev->alloc(n * 4);
  dev->swiglu(args(gb, ob));
  const std::vector<float> plain = download(*dev, ob);

  // Traced, in place over gate: the activation is taken before the product overwrites it.
  apr::Buffer gb2 = upload(*dev, gate);
  apr_test::TraceRecorder trace;
  trace.want(APR_STAGE_FFN_SILU);
  trace.want(APR_STAGE_FFN_GELU);
  {
    apr_test::ScopedTraceSink sink(*dev, trace);
    dev->swiglu(args(gb2, gb2));
  }
  const std::vector<float> traced = download(*dev, gb2);
  REQUIRE(trace.bad_emits == 0);
  REQUIRE(trace.emitted.size() == 1);  // FFN_GELU only: no FFN_SILU for a GELU gate
  const auto* act = trace.find(APR_STAGE_FFN_GELU, layer);
  REQUIRE(act != nullptr);
  REQUIRE(act->shape == std::vector<uint64_t>{rows, cols});

  for (size_t i = 0; i < n; ++i) {
    const double z = gate[i], g = gelu_ref(z), ref = g * up[i];
    INFO("element " << i << " gate " << z << " up " << up[i] << " ref gelu " << g << " got "
                    << act->data[i] << " ref out " << ref << " got " << plain[i]);
    const double act_tol = 1e-5 * std::fabs(g) + 2e-7 * (1 + std::fabs(z));
    REQUIRE(std::fabs(act->data[i] - g) <= act_tol);
    REQUIRE(std::fabs(plain[i] - ref) <= act_tol * std::fabs(up[i]) + 1e-5 * std::fabs(ref));
    // The tracing rule: the output is the product of exactly the emitted activation, and a
    // traced call computes what an untraced one does.
    REQUIRE(traced[i] == act->data[i] * up[i]);
    REQUIRE(traced[i] == plain[i]);
  }
}

TEST_CASE("cuda swiglu of a 1.2 host's struct is silu and emits FFN_SILU") {
  apr::Device* dev = gpu();
  if (!dev) return;
  std::mt19937_64 rng(78);
  const uint32_t rows = 2, cols = 100;
  const size_t n = size_t(rows) * cols;
  const std::vector<float> gate = random_floats(n, rng, -6, 6);
  const std::vector<float> up = random_floats(n, rng, -2, 2);
  apr::Buffer gb = upload(*dev, gate), ub = upload(*dev, up), ob = dev->alloc(n * 4);
  auto a = apr::abi_struct<apr_swiglu_args>();
  a.struct_size = APR_SWIGLU_ARGS_SIZE_V1_2;
  a.gate = gb.get();
  a.up = ub.get();
  a.out = ob.get();
  a.n_rows = rows;
  a.n_cols = cols;
  a.layer = 0;
  a.activation = APR_ACT_GELU_TANH;  // outside the 1.2 struct: must not be read
  apr_test::TraceRecorder trace;
  trace.want(APR_STAGE_FFN_SILU);
  trace.want(APR_STAGE_FFN_GELU);
  {
    apr_test::ScopedTraceSink sink(*dev, trace);
    dev->swiglu(a);
  }
  const std::vector<float> out = download(*dev, ob);
  REQUIRE(trace.emitted.size() == 1);
  const auto* act = trace.find(APR_STAGE_FFN_SILU, 0);
  REQUIRE(act != nullptr);
  for (size_t i = 0; i < n; ++i) {
    const double s = silu_ref(gate[i]);
    INFO("element " << i << " gate " << gate[i] << " ref silu " << s << " got " << act->data[i]);
    REQUIRE(std::fabs(act->data[i] - s) <= 1e-5 * std::fabs(s) + 1e-7);
    REQUIRE(out[i] == act->data[i] * up[i]);
  }
}

// ---- unary

TEST_CASE("cuda unary scales and soft-caps, in place and out of place") {
  apr::Device* dev = gpu();
  if (!dev) return;
  REQUIRE(dev->has_unary());
  std::mt19937_64 rng(4242);
  const uint64_t n = 1237, x_off = 3, out_off = 5, size = n + 10;  // floats
  const std::vector<float> x = random_floats(size, rng, -100, 100);
  struct UnaryCase {
    const char* name;
    uint32_t op;
    float alpha;
    bool in_place;
  };
  const UnaryCase cases[] = {
      {"scale by sqrt(2048)", APR_UNARY_SCALE, 45.254833f, false},
      {"scale by -0.375 in place", APR_UNARY_SCALE, -0.375f, true},
      {"soft-cap 30", APR_UNARY_SOFTCAP, 30.0f, false},
      {"soft-cap 50 in place", APR_UNARY_SOFTCAP, 50.0f, true},
  };
  for (const UnaryCase& c : cases) {
    INFO(c.name);
    apr::Buffer xb = upload(*dev, x);
    apr::Buffer ob = upload(*dev, std::vector<float>(size, kSentinel));
    auto a = apr::abi_struct<apr_unary_args>();
    a.op = c.op;
    a.alpha = c.alpha;
    a.x = xb.get();
    a.x_offset = x_off * 4;
    a.out = c.in_place ? xb.get() : ob.get();
    a.out_offset = (c.in_place ? x_off : out_off) * 4;
    a.n = n;
    dev->unary(a);
    const std::vector<float> got = download(*dev, c.in_place ? xb : ob);
    const uint64_t begin = c.in_place ? x_off : out_off;
    uint64_t saturated = 0;
    for (uint64_t i = 0; i < size; ++i) {
      INFO("element " << i);
      if (i < begin || i >= begin + n) {  // outside the view: untouched
        REQUIRE(got[i] == (c.in_place ? x[i] : kSentinel));
        continue;
      }
      const float xi = x[x_off + (i - begin)];
      if (c.op == APR_UNARY_SCALE) {
        REQUIRE(got[i] == static_cast<float>(double(c.alpha) * double(xi)));
      } else {
        const double ref = double(c.alpha) * std::tanh(double(xi) / c.alpha);
        INFO("x " << xi << " ref " << ref << " got " << got[i]);
        REQUIRE(std::fabs(got[i] - ref) <= 1e-5 * std::fabs(ref) + 1e-7);
        saturated += std::fabs(ref - xi) > 1.0;
      }
    }
    if (c.op == APR_UNARY_SOFTCAP) CHECK(saturated > n / 4);  // the cap did bend the values
  }
}

TEST_CASE("cuda device_caps reports the ABI 1.3 features") {
  apr::Device* dev = gpu();
  if (!dev) return;
  auto caps = apr::abi_struct<apr_device_caps>();
  REQUIRE(dev->api().device_caps(0, &caps) == APR_OK);
  const uint64_t want = APR_FEATURE_NORM_GROUPS | APR_FEATURE_ATTN_WINDOW |
                        APR_FEATURE_ATTN_SOFTCAP | APR_FEATURE_GELU;
  CHECK((caps.features & want) == want);
  CHECK(dev->has_unary());
}
