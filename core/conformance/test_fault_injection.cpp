// SPDX-License-Identifier: MIT
// Only meaningful against the cpu-fault test plugin with APR_CPU_FAULT set (see CMakeLists.txt):
// the named stage's tensor must be perturbed in place by +m, -m, +m, ... along each row, and every
// other (stage, layer) left alone. Against any other plugin these cases have nothing to check.
#include <random>

#include "plugin_fixture.hpp"
#include "reference_ops.hpp"

using namespace kernel_tests;

namespace {

struct FaultSpec {
  uint32_t layer = 0;
  std::string stage;
  float magnitude = 1.0f;
};

bool fault_under_test(Plugin& p, FaultSpec& f) {
  const char* env = std::getenv("APR_CPU_FAULT");
  if (std::string(p.api().name) != "cpu-fault" || !env || !*env) return false;
  const std::string s(env);
  const size_t a = s.find(':'), b = s.find(':', a + 1);
  f.layer = static_cast<uint32_t>(std::stoul(s.substr(0, a)));
  f.stage = s.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
  if (b != std::string::npos) f.magnitude = std::stof(s.substr(b + 1));
  return true;
}

float expected_shift(uint64_t col, float m) {
  return col % 2 == 0 ? m : -m;
}

}  // namespace

TEST_CASE("fault injection perturbs exactly the traced stage named", "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  FaultSpec f;
  if (!fault_under_test(p, f) || f.stage != "attn_norm") return;
  std::mt19937_64 rng(71);
  const uint32_t n_rows = 2, n_cols = 6, stride = 8;
  const std::vector<float> data = random_floats(rng, n_rows * stride);
  for (uint32_t layer : {f.layer, f.layer + 1})
    for (apr_stage stage : {apr_stage{APR_STAGE_ATTN_NORM}, apr_stage{APR_STAGE_FFN_NORM}}) {
      GuardedBuffer b(p, data.size());
      b.write(data);
      apr_trace_emit_args args{sizeof args, stage,  layer,  b.get(),
                               b.offset(),  n_rows, n_cols, stride};
      REQUIRE_APR_OK(p, p.api().trace_emit(p.device(), &args));  // no sink: perturbs anyway
      const std::vector<float> after = b.read();
      const bool faulty = layer == f.layer && stage == APR_STAGE_ATTN_NORM;
      INFO("stage " << stage << " layer " << layer);
      for (uint32_t r = 0; r < n_rows; ++r)
        for (uint32_t c = 0; c < stride; ++c) {
          const float shift = faulty && c < n_cols ? expected_shift(c, f.magnitude) : 0.0f;
          REQUIRE(after[r * stride + c] == data[r * stride + c] + shift);
        }
      b.check_guards();
    }
}

TEST_CASE("fault injection perturbs the softmax inside attention", "[fault]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  FaultSpec f;
  if (!fault_under_test(p, f) || f.stage != "attn_softmax") return;
  std::mt19937_64 rng(72);
  const uint32_t n_heads = 2, head_dim = 8, n_rows = 2, n_kv = n_rows;
  const std::vector<float> q = random_floats(rng, n_rows * n_heads * head_dim);
  const std::vector<float> kv = random_floats(rng, n_kv * n_heads * head_dim);
  std::vector<std::vector<float>> probs, outs;
  for (uint32_t layer : {f.layer, f.layer + 1}) {
    GuardedBuffer bq(p, q.size()), bk(p, kv.size()), bv(p, kv.size()), bo(p, q.size());
    bq.write(q);
    apr_buffer *kc = nullptr, *vc = nullptr;
    REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), kv.size() * 4, &kc));
    REQUIRE_APR_OK(p, p.api().buffer_alloc(p.device(), kv.size() * 4, &vc));
    REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), kc, 0, kv.data(), kv.size() * 4));
    REQUIRE_APR_OK(p, p.api().buffer_write(p.device(), vc, 0, kv.data(), kv.size() * 4));
    SinkRecorder recorder;
    recorder.wanted = {{APR_STAGE_ATTN_SOFTMAX, layer}};
    {
      ScopedSink sink(p, recorder);
      apr_attention_args args{sizeof args, bq.get(), bq.offset(), 0,        n_rows,
                              0,           n_heads,  n_heads,     head_dim, 0.3f,
                              layer,       kc,       vc,          bo.get(), bo.offset()};
      REQUIRE_APR_OK(p, p.api().attention(p.device(), &args));
    }
    REQUIRE(recorder.emitted.size() == 1);
    probs.push_back(recorder.emitted[0].data);
    outs.push_back(bo.read());
    p.api().buffer_free(p.device(), kc);
    p.api().buffer_free(p.device(), vc);
  }
  // Valid entries shift by +-m; masked ones stay 0; the attention output changes.
  for (uint32_t h = 0; h < n_heads; ++h)
    for (uint32_t r = 0; r < n_rows; ++r)
      for (uint32_t t = 0; t < n_kv; ++t) {
        const size_t i = (h * n_rows + r) * n_kv + t;
        const float shift = t <= r ? expected_shift(t, f.magnitude) : 0.0f;
        REQUIRE(std::fabs(probs[0][i] - (probs[1][i] + shift)) <= 1e-6);
      }
  REQUIRE(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4) != 0);
}
