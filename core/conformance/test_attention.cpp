// SPDX-License-Identifier: MIT
// Causal GQA attention over the cache (4 query heads on 2 KV heads, pos0 > 0, several rows) and
// the scores/softmax it emits through the trace sink.
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

namespace {

struct AttentionSetup {
  static constexpr uint32_t n_heads = 4, n_kv_heads = 2, head_dim = 16, pos0 = 5, n_rows = 3;
  static constexpr uint32_t n_ctx = 12, layer = 3;
  static constexpr uint32_t q_width = n_heads * head_dim, kv_dim = n_kv_heads * head_dim;
  static constexpr uint32_t q_stride = q_width + 4, n_kv = pos0 + n_rows;

  std::vector<float> q, k, v;
  std::vector<double> scores, probs, out;  // reference: n_heads x n_rows x n_kv, n_rows x q_width

  explicit AttentionSetup(std::mt19937_64& rng) {
    q = random_floats(rng, n_rows * q_stride, -2.0f, 2.0f);
    k = random_floats(rng, n_ctx * kv_dim, -2.0f, 2.0f);
    v = random_floats(rng, n_ctx * kv_dim);
    // Rows past pos0 + n_rows are not part of the attended context: poison them.
    for (uint32_t i = n_kv * kv_dim; i < n_ctx * kv_dim; ++i) k[i] = v[i] = std::nanf("");
    const RefAttention ref =
        ref_attention(q.data(), q_stride, k.data(), v.data(), kv_dim, n_rows, pos0, n_heads,
                      n_kv_heads, head_dim, 1.0 / std::sqrt(double(head_dim)));
    scores = ref.scores;
    probs = ref.probs;
    out = ref.out;
  }
};

std::vector<float> run_attention(Plugin& p, const AttentionSetup& s) {
  GuardedBuffer bq(p, s.q.size()), bo(p, s.n_rows * s.q_width);
  bq.write(s.q);
  apr_buffer *kc = nullptr, *vc = nullptr;
  REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), s.k.size() * 4, &kc));
  REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), s.v.size() * 4, &vc));
  REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), kc, 0, s.k.data(), s.k.size() * 4));
  REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), vc, 0, s.v.data(), s.v.size() * 4));
  apr_attention_args args{
      sizeof args, bq.get(),  bq.offset(),  s.q_stride, s.n_rows,
      s.pos0,      s.n_heads, s.n_kv_heads, s.head_dim, 1.0f / std::sqrt(float(s.head_dim)),
      s.layer,     kc,        vc,           bo.get(),   bo.offset()};
  REQUIRE_APR_OK(p, p.api().attention(p.device(), &args));
  std::vector<float> out = bo.read();
  bq.check_guards();
  bo.check_guards();
  p.api().buffer_free(p.device(), kc);
  p.api().buffer_free(p.device(), vc);
  return out;
}

void check_emitted(const SinkRecorder::Tensor* t, const std::vector<double>& want,
                   const AttentionSetup& s, const char* what) {
  INFO(what);
  REQUIRE(t != nullptr);
  REQUIRE(t->shape == std::vector<uint64_t>{s.n_heads, s.n_rows, s.n_kv});
  uint64_t masked_nonzero = 0;
  for (uint32_t h = 0; h < s.n_heads; ++h)
    for (uint32_t r = 0; r < s.n_rows; ++r)
      for (uint32_t c = s.pos0 + r + 1; c < s.n_kv; ++c)
        masked_nonzero += t->data[(h * s.n_rows + r) * s.n_kv + c] != 0.0f;
  REQUIRE(masked_nonzero == 0);
  check_close(t->data, want, 1e-11, what);
}

}  // namespace

TEST_CASE("attention matches a float64 reference and emits scores and softmax", "[attention]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(31);
  const AttentionSetup s(rng);

  SinkRecorder recorder;
  recorder.wanted = {{APR_STAGE_ATTN_SCORES, s.layer}, {APR_STAGE_ATTN_SOFTMAX, s.layer}};
  std::vector<float> traced;
  {
    ScopedSink sink(p, recorder);
    traced = run_attention(p, s);
  }
  // Scores are dot products of 16 f32 products, softmax in at least f32: ~1e-7 relative.
  check_close(traced, s.out, 1e-11, "attention output");
  REQUIRE(recorder.bad_emits == 0);
  REQUIRE(recorder.emitted.size() == 2);
  check_emitted(recorder.find(APR_STAGE_ATTN_SCORES, s.layer), s.scores, s, "ATTN_SCORES");
  check_emitted(recorder.find(APR_STAGE_ATTN_SOFTMAX, s.layer), s.probs, s, "ATTN_SOFTMAX");

  // Unwanted (other layer) and untraced runs emit nothing and compute the same bits as each
  // other. The ABI lets a traced run take another (materialising) path, so they need not match
  // the traced run bit for bit: they meet the same 1e-11 NMSE against the float64 reference.
  SinkRecorder other_layer;
  other_layer.wanted = {{APR_STAGE_ATTN_SCORES, s.layer + 1}};
  std::vector<float> quiet;
  {
    ScopedSink sink(p, other_layer);
    quiet = run_attention(p, s);
  }
  REQUIRE(other_layer.emitted.empty());
  const std::vector<float> untraced = run_attention(p, s);
  REQUIRE(std::memcmp(quiet.data(), untraced.data(), untraced.size() * 4) == 0);
  check_close(untraced, s.out, 1e-11, "untraced attention output");
}

TEST_CASE("attention reports a refusing sink as ABORTED", "[attention][trace]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(32);
  const AttentionSetup s(rng);
  SinkRecorder recorder;
  recorder.wanted = {{APR_STAGE_ATTN_SOFTMAX, s.layer}};
  recorder.emit_status = APR_ERR_INTERNAL;
  ScopedSink sink(p, recorder);
  GuardedBuffer bq(p, s.q.size()), bo(p, s.n_rows * s.q_width);
  bq.write(s.q);
  apr_buffer *kc = nullptr, *vc = nullptr;
  REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), s.k.size() * 4, &kc));
  REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), s.v.size() * 4, &vc));
  REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), kc, 0, s.k.data(), s.k.size() * 4));
  REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), vc, 0, s.v.data(), s.v.size() * 4));
  apr_attention_args args{sizeof args, bq.get(),  bq.offset(),  s.q_stride, s.n_rows,
                          s.pos0,      s.n_heads, s.n_kv_heads, s.head_dim, 0.25f,
                          s.layer,     kc,        vc,           bo.get(),   bo.offset()};
  REQUIRE(p.api().attention(p.device(), &args) == APR_ERR_ABORTED);
  REQUIRE(std::strlen(p.api().error_message()) > 0);
  p.api().buffer_free(p.device(), kc);
  p.api().buffer_free(p.device(), vc);
}

TEST_CASE("attention results do not depend on the thread count", "[attention][determinism]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  std::mt19937_64 rng(33);
  const uint32_t n_heads = 6, n_kv_heads = 2, head_dim = 32, n_rows = 9, n_kv = n_rows;
  const uint32_t q_width = n_heads * head_dim, kv_dim = n_kv_heads * head_dim;
  const std::vector<float> q = random_floats(rng, n_rows * q_width);
  const std::vector<float> k = random_floats(rng, n_kv * kv_dim);
  const std::vector<float> v = random_floats(rng, n_kv * kv_dim);
  std::vector<std::vector<float>> results;
  for (uint32_t n_threads : {1u, 2u, 5u}) {
    apr_device* d = p.open_device(n_threads);
    REQUIRE(d != nullptr);
    apr_buffer *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;
    REQUIRE_APR_OK(p, p.api().buffer_alloc(d, q.size() * 4, &bq));
    REQUIRE_APR_OK(p, p.api().buffer_alloc(d, k.size() * 4, &bk));
    REQUIRE_APR_OK(p, p.api().buffer_alloc(d, v.size() * 4, &bv));
    REQUIRE_APR_OK(p, p.api().buffer_alloc(d, q.size() * 4, &bo));
    REQUIRE_APR_OK(p, p.api().buffer_write(d, bq, 0, q.data(), q.size() * 4));
    REQUIRE_APR_OK(p, p.api().buffer_write(d, bk, 0, k.data(), k.size() * 4));
    REQUIRE_APR_OK(p, p.api().buffer_write(d, bv, 0, v.data(), v.size() * 4));
    apr_attention_args args{sizeof args, bq,   0, 0,  n_rows, 0,  n_heads, n_kv_heads,
                            head_dim,    0.2f, 0, bk, bv,     bo, 0};
    REQUIRE_APR_OK(p, p.api().attention(d, &args));
    std::vector<float> out(q.size());
    REQUIRE_APR_OK(p, p.api().buffer_read(d, bo, 0, out.data(), out.size() * 4));
    results.push_back(out);
    for (apr_buffer* b : {bq, bk, bv, bo}) p.api().buffer_free(d, b);
    p.api().device_close(d);
  }
  for (size_t i = 1; i < results.size(); ++i)
    REQUIRE(std::memcmp(results[0].data(), results[i].data(), results[0].size() * 4) == 0);
}
