// SPDX-License-Identifier: MIT
// The operations of ABI 1.3 (qwen3, gemma2, gemma3, phi3) against float64 references: grouped and
// strided rms_norm (per-head QK-norm on [q|k|v] rows), sliding-window and soft-capped attention
// with their traced scores and softmax, the GELU-gated FFN and the unary kernel. Each check skips
// on a device that does not report the feature (or has no unary kernel).
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

namespace {

// Normalised squared difference of two references: how far apart a feature puts the results,
// so that a check can REQUIRE its data to exercise the feature at all.
double ref_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return num / den;
}

// ---- rms_norm

// Rows of `stride` floats whose groups of `width` have very different scales (one of them tiny,
// so eps matters): a norm over the whole row instead of each group is far off.
std::vector<float> grouped_rows(std::mt19937_64& rng, uint32_t n_rows, uint32_t stride,
                                uint32_t width) {
  std::vector<float> x = random_floats(rng, uint64_t{n_rows} * stride, -2.0f, 2.0f);
  for (uint64_t i = 0; i < x.size(); ++i) {
    const uint64_t group = (i % stride) / width;
    x[i] *= group % 3 == 2 ? 1e-3f : 0.5f + 1.5f * float(group % 3);
  }
  return x;
}

// Elements of a strided buffer outside the n_rows x n_cols view at `col` that differ from `before`.
uint64_t changed_outside(const std::vector<float>& after, const std::vector<float>& before,
                         uint32_t stride, uint32_t col, uint32_t n_cols) {
  uint64_t changed = 0;
  for (uint64_t i = 0; i < after.size(); ++i) {
    const uint64_t c = i % stride;
    if (c >= col && c < col + n_cols) continue;
    changed += std::memcmp(&after[i], &before[i], 4) != 0;
  }
  return changed;
}

// The view's n_rows x n_cols floats at column `col` of rows `stride` apart, packed.
std::vector<float> view_of(const std::vector<float>& all, uint32_t n_rows, uint32_t stride,
                           uint32_t col, uint32_t n_cols) {
  std::vector<float> out;
  for (uint32_t r = 0; r < n_rows; ++r)
    out.insert(out.end(), all.begin() + r * stride + col, all.begin() + r * stride + col + n_cols);
  return out;
}

// ---- attention

struct AttentionCase {
  const char* name;
  uint32_t pos0, n_rows, window;
  float softcap;
  float amplitude;  // q and k drawn from [-amplitude, amplitude]: the scores' size
};

struct AttentionData {
  static constexpr uint32_t n_heads = 4, n_kv_heads = 2, head_dim = 16, layer = 7;
  static constexpr uint32_t q_width = n_heads * head_dim, kv_dim = n_kv_heads * head_dim;
  static constexpr uint32_t q_stride = q_width + 4;
  AttentionCase c;
  uint32_t n_kv, n_ctx;
  std::vector<float> q, k, v;
  RefAttention ref;

  AttentionData(const AttentionCase& ac, std::mt19937_64& rng)
      : c(ac), n_kv(ac.pos0 + ac.n_rows), n_ctx(n_kv + 3) {
    q = random_floats(rng, uint64_t{c.n_rows} * q_stride, -c.amplitude, c.amplitude);
    k = random_floats(rng, uint64_t{n_ctx} * kv_dim, -c.amplitude, c.amplitude);
    v = random_floats(rng, uint64_t{n_ctx} * kv_dim);
    // Rows past pos0 + n_rows are not part of the attended context: poison them.
    for (uint64_t i = uint64_t{n_kv} * kv_dim; i < k.size(); ++i) k[i] = v[i] = std::nanf("");
    ref = reference(c.window, c.softcap);
  }
  RefAttention reference(uint32_t window, double softcap) const {
    return ref_attention(q.data(), q_stride, k.data(), v.data(), kv_dim, c.n_rows, c.pos0, n_heads,
                         n_kv_heads, head_dim, scale(), window, softcap);
  }
  static float scale() { return 0.25f; }  // 1 / sqrt(head_dim), exact in f32
  // Whether row r sees key t.
  bool visible(uint32_t r, uint32_t t) const {
    const uint32_t p = c.pos0 + r;
    return t <= p && (c.window == 0 || p - t < c.window);
  }
};

// Runs the attention of `d` on device `dev` (with p's table) and returns its output.
std::vector<float> run_attention_on(Plugin& p, apr_device* dev, const AttentionData& d) {
  const apr_plugin_api& api = p.api();
  apr_buffer *bq = nullptr, *kc = nullptr, *vc = nullptr, *bo = nullptr;
  const uint64_t out_floats = uint64_t{d.c.n_rows} * d.q_width;
  REQUIRE_APR_OK(p, api.buffer_alloc(dev, d.q.size() * 4, &bq));
  REQUIRE_APR_OK(p, api.buffer_alloc(dev, d.k.size() * 4, &kc));
  REQUIRE_APR_OK(p, api.buffer_alloc(dev, d.v.size() * 4, &vc));
  REQUIRE_APR_OK(p, api.buffer_alloc(dev, out_floats * 4, &bo));
  REQUIRE_APR_OK(p, api.buffer_write(dev, bq, 0, d.q.data(), d.q.size() * 4));
  REQUIRE_APR_OK(p, api.buffer_write(dev, kc, 0, d.k.data(), d.k.size() * 4));
  REQUIRE_APR_OK(p, api.buffer_write(dev, vc, 0, d.v.data(), d.v.size() * 4));
  apr_attention_args args{};
  args.struct_size = sizeof args;
  args.q = bq;
  args.q_row_stride = d.q_stride;
  args.n_rows = d.c.n_rows;
  args.pos0 = d.c.pos0;
  args.n_heads = d.n_heads;
  args.n_kv_heads = d.n_kv_heads;
  args.head_dim = d.head_dim;
  args.scale = d.scale();
  args.layer = d.layer;
  args.k_cache = kc;
  args.v_cache = vc;
  args.out = bo;
  args.window = d.c.window;
  args.softcap = d.c.softcap;
  REQUIRE_APR_OK(p, api.attention(dev, &args));
  std::vector<float> out(out_floats);
  REQUIRE_APR_OK(p, api.buffer_read(dev, bo, 0, out.data(), out.size() * 4));
  for (apr_buffer* b : {bq, kc, vc, bo}) api.buffer_free(dev, b);
  return out;
}

// An emitted ATTN_SCORES or ATTN_SOFTMAX: its shape, exact zeros where the row does not see the
// key (before the window as past the row's position), and the reference values.
void check_emitted(const SinkRecorder::Tensor* t, const std::vector<double>& want,
                   const AttentionData& d, const char* what) {
  INFO(what);
  REQUIRE(t != nullptr);
  REQUIRE(t->shape == std::vector<uint64_t>{d.n_heads, d.c.n_rows, d.n_kv});
  uint64_t masked_nonzero = 0;
  for (uint32_t h = 0; h < d.n_heads; ++h)
    for (uint32_t r = 0; r < d.c.n_rows; ++r)
      for (uint32_t col = 0; col < d.n_kv; ++col)
        if (!d.visible(r, col))
          masked_nonzero += t->data[(uint64_t{h} * d.c.n_rows + r) * d.n_kv + col] != 0.0f;
  REQUIRE(masked_nonzero == 0);
  // As test_attention.cpp: dot products of 16 f32 products, the cap and the softmax in at least
  // f32, ~1e-7 relative; squared and normalised, far below 1e-11.
  check_close(t->data, want, 1e-11, what);
}

// Output, traced scores and softmax of one case against the reference, traced and untraced. The
// ABI lets a traced run take another (materialising) path than an untraced one, so the two need
// not agree bit for bit: each must meet the same 1e-11 NMSE against the float64 reference.
void check_attention_case(Plugin& p, const AttentionCase& c, uint64_t seed) {
  INFO(c.name << " (pos0 " << c.pos0 << ", rows " << c.n_rows << ", window " << c.window
              << ", softcap " << c.softcap << ")");
  std::mt19937_64 rng(seed);
  const AttentionData d(c, rng);
  // The data must exercise what is checked: the window hides keys that matter, the cap bends
  // the scores.
  if (c.window > 0) REQUIRE(ref_distance(d.reference(0, c.softcap).out, d.ref.out) > 1e-3);
  if (c.softcap > 0) {
    const RefAttention uncapped = d.reference(c.window, 0);
    double largest = 0;
    for (double s : uncapped.scores) largest = std::max(largest, std::fabs(s));
    REQUIRE(largest > 1.5 * c.softcap);
    REQUIRE(ref_distance(uncapped.out, d.ref.out) > 1e-3);
  }

  SinkRecorder recorder;
  recorder.wanted = {{APR_STAGE_ATTN_SCORES, d.layer}, {APR_STAGE_ATTN_SOFTMAX, d.layer}};
  std::vector<float> traced;
  {
    ScopedSink sink(p, recorder);
    traced = run_attention_on(p, p.device(), d);
  }
  check_close(traced, d.ref.out, 1e-11, "attention output");
  REQUIRE(recorder.bad_emits == 0);
  REQUIRE(recorder.emitted.size() == 2);
  check_emitted(recorder.find(APR_STAGE_ATTN_SCORES, d.layer), d.ref.scores, d, "ATTN_SCORES");
  check_emitted(recorder.find(APR_STAGE_ATTN_SOFTMAX, d.layer), d.ref.probs, d, "ATTN_SOFTMAX");
  const std::vector<float> untraced = run_attention_on(p, p.device(), d);
  check_close(untraced, d.ref.out, 1e-11, "untraced attention output");
}

// The same case on devices of 1, 2 and 5 threads: the same bits.
void check_thread_independence(Plugin& p, const AttentionCase& c, uint64_t seed) {
  INFO(c.name << " (pos0 " << c.pos0 << ", rows " << c.n_rows << ", window " << c.window
              << ", softcap " << c.softcap << ")");
  std::mt19937_64 rng(seed);
  const AttentionData d(c, rng);
  std::vector<std::vector<float>> results;
  for (uint32_t n_threads : {1u, 2u, 5u}) {
    apr_device* dev = p.open_device(n_threads);
    REQUIRE(dev != nullptr);
    results.push_back(run_attention_on(p, dev, d));
    p.api().device_close(dev);
  }
  for (size_t i = 1; i < results.size(); ++i)
    REQUIRE(std::memcmp(results[0].data(), results[i].data(), results[0].size() * 4) == 0);
  check_close(results[0], d.ref.out, 1e-11, "attention output");
}

}  // namespace

TEST_CASE("rms_norm normalises each head of strided [q|k|v] rows in place (ABI 1.3)",
          "[rms_norm][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_NORM_GROUPS);
  std::mt19937_64 rng(71);
  // qwen3-like: 4 query heads and 2 KV heads of 16 in rows of [q|k|v].
  const uint32_t n_rows = 3, head_dim = 16, n_q = 4, n_k = 2, stride = (n_q + 2 * n_k) * head_dim;
  const float eps = 1e-6f;
  const std::vector<float> x = grouped_rows(rng, n_rows, stride, head_dim);
  const std::vector<float> wq = random_floats(rng, head_dim, 0.5f, 1.5f);
  const std::vector<float> wk = random_floats(rng, head_dim, 0.5f, 1.5f);
  GuardedBuffer bx(p, x.size()), bwq(p, head_dim), bwk(p, head_dim);
  bx.write(x);
  bwq.write(wq);
  bwk.write(wk);
  struct Slice {
    const char* name;
    uint32_t col, heads;
    const GuardedBuffer& weight;
    const std::vector<float>& w;
  };
  std::vector<float> before = x;
  for (const Slice& s : {Slice{"Q", 0, n_q, bwq, wq}, Slice{"K", n_q * head_dim, n_k, bwk, wk}}) {
    INFO(s.name << " heads, in place");
    const uint32_t n_cols = s.heads * head_dim;
    apr_rms_norm_args args{};
    args.struct_size = sizeof args;
    args.x = args.out = bx.get();
    args.x_offset = args.out_offset = bx.offset() + uint64_t{s.col} * 4;
    args.weight = s.weight.get();
    args.weight_offset = s.weight.offset();
    args.n_rows = n_rows;
    args.n_cols = n_cols;
    args.eps = eps;
    args.row_stride = stride;
    args.n_groups = s.heads;
    REQUIRE_APR_OK(p, p.api().rms_norm(p.device(), &args));
    const std::vector<float> after = bx.read();
    const std::vector<double> want =
        ref_rms_norm(before.data() + s.col, n_rows, n_cols, stride, s.heads, s.w.data(), eps);
    // As the row norm of test_norm_add.cpp: a handful of f32 roundings per element.
    check_close(view_of(after, n_rows, stride, s.col, n_cols), want, 1e-12, "grouped rms_norm");
    // The rest of each row (the other slices, V) is left alone bit for bit.
    REQUIRE(changed_outside(after, before, stride, s.col, n_cols) == 0);
    // One norm over all the heads at once is far from the per-head result.
    REQUIRE(ref_distance(ref_rms_norm(before.data() + s.col, n_rows, n_cols, stride, 1,
                                      std::vector<float>(n_cols, 1.0f).data(), eps),
                         want) > 1e-2);
    before = after;
  }
  bx.check_guards();
  bwq.check_guards();
  bwk.check_guards();
}

TEST_CASE("rms_norm with groups and a row stride writes a separate output (ABI 1.3)",
          "[rms_norm][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_NORM_GROUPS);
  std::mt19937_64 rng(72);
  struct Layout {
    uint32_t n_cols, n_groups, stride;
  };
  // Groups in strided rows; one group in strided rows; groups in packed rows.
  for (const Layout& l : {Layout{30, 3, 41}, Layout{30, 1, 37}, Layout{40, 5, 40}}) {
    INFO("n_cols " << l.n_cols << ", n_groups " << l.n_groups << ", row_stride " << l.stride);
    const uint32_t n_rows = 4, width = l.n_cols / l.n_groups;
    const float eps = 1e-5f, fill = 7.0f;
    const std::vector<float> x = grouped_rows(rng, n_rows, l.stride, width);
    const std::vector<float> w = random_floats(rng, width, 0.5f, 1.5f);
    GuardedBuffer bx(p, x.size()), bw(p, width), bo(p, x.size(), fill);
    bx.write(x);
    bw.write(w);
    apr_rms_norm_args args{};
    args.struct_size = sizeof args;
    args.x = bx.get();
    args.x_offset = bx.offset();
    args.weight = bw.get();
    args.weight_offset = bw.offset();
    args.out = bo.get();
    args.out_offset = bo.offset();
    args.n_rows = n_rows;
    args.n_cols = l.n_cols;
    args.eps = eps;
    args.row_stride = l.stride;
    args.n_groups = l.n_groups;
    REQUIRE_APR_OK(p, p.api().rms_norm(p.device(), &args));
    const std::vector<float> out = bo.read();
    const std::vector<double> want =
        ref_rms_norm(x.data(), n_rows, l.n_cols, l.stride, l.n_groups, w.data(), eps);
    check_close(view_of(out, n_rows, l.stride, 0, l.n_cols), want, 1e-12, "strided rms_norm");
    // The output has x's layout: the gaps between its rows keep what was there.
    REQUIRE(changed_outside(out, std::vector<float>(out.size(), fill), l.stride, 0, l.n_cols) == 0);
    REQUIRE(std::memcmp(bx.read().data(), x.data(), x.size() * 4) == 0);  // x is an input
    bx.check_guards();
    bw.check_guards();
    bo.check_guards();
  }
}

TEST_CASE("attention honours a sliding window (ABI 1.3)", "[attention][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_ATTN_WINDOW);
  // Prefill of several rows after pos0 > 0, a decode step, and a window wider than the context.
  check_attention_case(p, {"prefill", 6, 5, 4, 0.0f, 2.0f}, 73);
  check_attention_case(p, {"decode", 12, 1, 5, 0.0f, 2.0f}, 74);
  check_attention_case(p, {"window of one", 3, 2, 1, 0.0f, 2.0f}, 75);
  // Not REQUIREd to differ from the plain result: every key is inside the window.
  std::mt19937_64 rng(76);
  const AttentionCase wide{"window wider than the context", 2, 3, 64, 0.0f, 2.0f};
  const AttentionData d(wide, rng);
  REQUIRE(ref_distance(d.reference(0, 0).out, d.ref.out) == 0.0);
  check_close(run_attention_on(p, p.device(), d), d.ref.out, 1e-11, "wide window");
}

TEST_CASE("attention soft-caps its scores (ABI 1.3)", "[attention][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_ATTN_SOFTCAP);
  // q and k in [-3, 3]: scaled scores of a few units, where c tanh(s / c) bends for c of 2..5.
  check_attention_case(p, {"prefill", 3, 4, 0, 3.0f, 3.0f}, 77);
  check_attention_case(p, {"decode", 9, 1, 0, 2.0f, 3.0f}, 78);
  check_attention_case(p, {"gemma2's cap", 0, 6, 0, 5.0f, 4.0f}, 79);
}

TEST_CASE("attention with a window and a soft-cap together (ABI 1.3)", "[attention][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_ATTN_WINDOW);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_ATTN_SOFTCAP);
  check_attention_case(p, {"prefill", 9, 3, 4, 4.0f, 3.0f}, 80);
  check_attention_case(p, {"decode", 15, 1, 6, 2.5f, 3.0f}, 81);
}

TEST_CASE("windowed, soft-capped attention does not depend on the thread count",
          "[attention][family][determinism]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_ATTN_WINDOW);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_ATTN_SOFTCAP);
  check_thread_independence(p, {"threads", 4, 9, 5, 3.0f, 3.0f}, 82);
  // Contexts of several hundred keys: a plugin that works through the cache in blocks (and splits
  // the blocks of a few rows across threads) must fold them in an order of its own.
  check_thread_independence(p, {"long prefill", 280, 21, 150, 3.0f, 3.0f}, 90);
  check_thread_independence(p, {"long decode", 700, 1, 300, 2.5f, 3.0f}, 91);
}

TEST_CASE("attention over a long context (several hundred keys)", "[attention][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_ATTN_WINDOW);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_ATTN_SOFTCAP);
  check_attention_case(p, {"prefill from 0", 0, 300, 0, 0.0f, 2.0f}, 92);
  check_attention_case(p, {"prefill after a long cache", 400, 37, 0, 0.0f, 2.0f}, 93);
  check_attention_case(p, {"decode", 900, 1, 0, 0.0f, 2.0f}, 94);
  check_attention_case(p, {"few rows", 500, 3, 0, 0.0f, 2.0f}, 95);
  check_attention_case(p, {"windowed prefill", 260, 40, 200, 0.0f, 2.0f}, 96);
  check_attention_case(p, {"capped decode", 650, 1, 0, 3.0f, 3.0f}, 97);
  check_attention_case(p, {"window and cap", 333, 9, 129, 4.0f, 3.0f}, 98);
}

TEST_CASE("swiglu with the GELU activation matches a float64 reference and emits FFN_GELU",
          "[swiglu][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  KERNEL_TEST_FEATURE_OR_SKIP(p, APR_FEATURE_GELU);
  std::mt19937_64 rng(83);
  const uint32_t n_rows = 3, n_cols = 50, layer = 4;
  for (int out_alias = 0; out_alias < 3; ++out_alias) {  // separate, out = gate, out = up
    INFO("output alias " << out_alias);
    const std::vector<float> gate = random_floats(rng, n_rows * n_cols, -6.0f, 6.0f);
    const std::vector<float> up = random_floats(rng, n_rows * n_cols, -2.0f, 2.0f);
    GuardedBuffer bg(p, gate.size()), bu(p, up.size()), bo(p, gate.size());
    bg.write(gate);
    bu.write(up);
    GuardedBuffer& out = out_alias == 0 ? bo : (out_alias == 1 ? bg : bu);
    SinkRecorder recorder;
    recorder.wanted = {{APR_STAGE_FFN_GELU, layer}, {APR_STAGE_FFN_SILU, layer}};
    {
      ScopedSink sink(p, recorder);
      const apr_swiglu_args args{.struct_size = sizeof args,
                                 .gate = bg.get(),
                                 .gate_offset = bg.offset(),
                                 .up = bu.get(),
                                 .up_offset = bu.offset(),
                                 .out = out.get(),
                                 .out_offset = out.offset(),
                                 .n_rows = n_rows,
                                 .n_cols = n_cols,
                                 .layer = layer,
                                 .reserved0 = 0,
                                 .activation = APR_ACT_GELU_TANH};
      REQUIRE_APR_OK(p, p.api().swiglu(p.device(), &args));
    }
    std::vector<double> gelu(gate.size()), silu(gate.size()), want(gate.size());
    for (size_t i = 0; i < gate.size(); ++i) {
      gelu[i] = ref_gelu_tanh(gate[i]);
      silu[i] = ref_silu(gate[i]);
      want[i] = gelu[i] * up[i];
    }
    REQUIRE(ref_distance(silu, gelu) > 1e-3);  // the activations differ on this data
    const std::vector<float> got = out.read();
    // A handful of f32 roundings and an f32 tanh per element, as swiglu's silu: 1e-12.
    check_close(got, want, 1e-12, "geglu");
    REQUIRE(recorder.bad_emits == 0);
    REQUIRE(recorder.find(APR_STAGE_FFN_SILU, layer) == nullptr);
    REQUIRE(recorder.emitted.size() == 1);
    const SinkRecorder::Tensor* t = recorder.find(APR_STAGE_FFN_GELU, layer);
    REQUIRE(t != nullptr);
    REQUIRE(t->shape == std::vector<uint64_t>{n_rows, n_cols});
    check_close(t->data, gelu, 1e-12, "FFN_GELU");
    // The tracing rule: the output is the emitted activation times up (one f32 rounding).
    uint64_t inconsistent = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      const double product = double(t->data[i]) * up[i];
      inconsistent += std::fabs(got[i] - product) > 1.2e-7 * std::fabs(product);
    }
    REQUIRE(inconsistent == 0);
    bg.check_guards();
    bu.check_guards();
    bo.check_guards();
  }
}

TEST_CASE("unary scales and soft-caps (ABI 1.3)", "[unary][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!p.has_unary()) throw conformance::CheckSkipped{"the plugin has no unary kernel"};
  std::mt19937_64 rng(84);
  struct Case {
    uint32_t op;
    float alpha, range;
  };
  // gemma's embedding scale sqrt(2304) = 48, a negative scale, soft-caps (gemma2's final 30 and
  // a small one) on values well beyond them, where tanh saturates.
  for (const Case& c : {Case{APR_UNARY_SCALE, 48.0f, 2.0f}, Case{APR_UNARY_SCALE, -0.75f, 5.0f},
                        Case{APR_UNARY_SOFTCAP, 30.0f, 90.0f}, Case{APR_UNARY_SOFTCAP, 2.5f, 8.0f}})
    for (bool in_place : {false, true}) {
      INFO("op " << c.op << ", alpha " << c.alpha << (in_place ? ", in place" : ""));
      const uint64_t n = 1001;
      const std::vector<float> x = random_floats(rng, n, -c.range, c.range);
      GuardedBuffer bx(p, n), bo(p, n);
      bx.write(x);
      GuardedBuffer& out = in_place ? bx : bo;
      const apr_unary_args args{.struct_size = sizeof args,
                                .op = c.op,
                                .alpha = c.alpha,
                                .x = bx.get(),
                                .x_offset = bx.offset(),
                                .out = out.get(),
                                .out_offset = out.offset(),
                                .n = n};
      REQUIRE_APR_OK(p, p.api().unary(p.device(), &args));
      std::vector<double> want(n), identity(x.begin(), x.end());
      for (uint64_t i = 0; i < n; ++i) want[i] = ref_unary(c.op, c.alpha, x[i]);
      if (c.op == APR_UNARY_SOFTCAP) REQUIRE(ref_distance(identity, want) > 1e-2);  // it bends
      // One or two f32 roundings and an f32 tanh: ~1e-7 relative, squared far below 1e-12.
      check_close(out.read(), want, 1e-12, "unary");
      if (!in_place) REQUIRE(std::memcmp(bx.read().data(), x.data(), n * 4) == 0);
      bx.check_guards();
      bo.check_guards();
    }
}

// A 1.2 host sets struct_size to its sizeof, which may include tail padding (rounded up to the
// struct's 8-byte alignment); either size ends before the members of ABI 1.3.
size_t padded_v1_2(size_t size_v1_2) {
  return (size_v1_2 + 7) / 8 * 8;
}

TEST_CASE("the members of ABI 1.3 are not read beyond a 1.2 struct_size", "[abi][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(85);
  // A 1.2 host's structs end before the new members; whatever lies behind must not be read.
  const uint32_t n_rows = 2, n_cols = 32;
  const std::vector<float> x = random_floats(rng, n_rows * n_cols, -2.0f, 2.0f);
  const std::vector<float> w = random_floats(rng, n_cols, 0.5f, 1.5f);
  GuardedBuffer bx(p, x.size()), bw(p, n_cols), bo(p, x.size()), bg(p, x.size());
  bx.write(x);
  bw.write(w);
  bg.write(x);
  std::vector<double> silu_x(x.size());
  for (size_t i = 0; i < x.size(); ++i) silu_x[i] = ref_silu(x[i]) * x[i];
  for (const size_t norm_size :
       {APR_RMS_NORM_ARGS_SIZE_V1_2, padded_v1_2(APR_RMS_NORM_ARGS_SIZE_V1_2)}) {
    INFO("rms_norm struct_size " << norm_size);
    const apr_rms_norm_args norm{.struct_size = norm_size,
                                 .x = bx.get(),
                                 .x_offset = bx.offset(),
                                 .weight = bw.get(),
                                 .weight_offset = bw.offset(),
                                 .out = bo.get(),
                                 .out_offset = bo.offset(),
                                 .n_rows = n_rows,
                                 .n_cols = n_cols,
                                 .eps = 1e-5f,
                                 .reserved0 = 0,
                                 .row_stride = 1000000,  // out of bounds if read
                                 .n_groups = 3};         // does not divide n_cols
    REQUIRE_APR_OK(p, p.api().rms_norm(p.device(), &norm));
    check_close(bo.read(), ref_rms_norm(x.data(), n_rows, n_cols, n_cols, 1, w.data(), 1e-5), 1e-12,
                "rms_norm with a 1.2-sized struct");
  }
  for (const size_t sw_size : {APR_SWIGLU_ARGS_SIZE_V1_2, padded_v1_2(APR_SWIGLU_ARGS_SIZE_V1_2)}) {
    INFO("swiglu struct_size " << sw_size);
    SinkRecorder recorder;
    recorder.wanted = {{APR_STAGE_FFN_SILU, 0}, {APR_STAGE_FFN_GELU, 0}};
    {
      ScopedSink sink(p, recorder);
      const apr_swiglu_args sw{.struct_size = sw_size,
                               .gate = bg.get(),
                               .gate_offset = bg.offset(),
                               .up = bx.get(),
                               .up_offset = bx.offset(),
                               .out = bo.get(),
                               .out_offset = bo.offset(),
                               .n_rows = n_rows,
                               .n_cols = n_cols,
                               .layer = 0,
                               .reserved0 = 0,
                               .activation = 0xDEAD};  // an unknown activation if read
      REQUIRE_APR_OK(p, p.api().swiglu(p.device(), &sw));
    }
    check_close(bo.read(), silu_x, 1e-12, "swiglu with a 1.2-sized struct is silu");
    REQUIRE(recorder.find(APR_STAGE_FFN_GELU, 0) == nullptr);
    REQUIRE(recorder.find(APR_STAGE_FFN_SILU, 0) != nullptr);
  }

  // Attention's 1.2 struct ends on an 8-byte member: no padding to consider.
  std::mt19937_64 arng(86);
  const AttentionData d({"1.2 struct", 5, 2, 0, 0.0f, 2.0f}, arng);
  const std::vector<float> full = run_attention_on(p, p.device(), d);
  check_close(full, d.ref.out, 1e-11, "attention (1.3 struct, no window, no cap)");
  GuardedBuffer bq(p, d.q.size()), bout(p, full.size());
  bq.write(d.q);
  apr_buffer *kc = nullptr, *vc = nullptr;
  REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), d.k.size() * 4, &kc));
  REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), d.v.size() * 4, &vc));
  REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), kc, 0, d.k.data(), d.k.size() * 4));
  REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), vc, 0, d.v.data(), d.v.size() * 4));
  const apr_attention_args att{.struct_size = APR_ATTENTION_ARGS_SIZE_V1_2,
                               .q = bq.get(),
                               .q_offset = bq.offset(),
                               .q_row_stride = d.q_stride,
                               .n_rows = d.c.n_rows,
                               .pos0 = d.c.pos0,
                               .n_heads = d.n_heads,
                               .n_kv_heads = d.n_kv_heads,
                               .head_dim = d.head_dim,
                               .scale = d.scale(),
                               .layer = d.layer,
                               .k_cache = kc,
                               .v_cache = vc,
                               .out = bout.get(),
                               .out_offset = bout.offset(),
                               .window = 1,
                               .softcap = -1.0f};  // invalid if read
  REQUIRE_APR_OK(p, p.api().attention(p.device(), &att));
  check_close(bout.read(), d.ref.out, 1e-11, "attention with a 1.2-sized struct");
  p.api().buffer_free(p.device(), kc);
  p.api().buffer_free(p.device(), vc);
}
