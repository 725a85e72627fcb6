// SPDX-License-Identifier: MIT
// Whole-model checks: a tiny transformer run through the plugin under test and through the
// reference (cpu) plugin must give the same logits, emit every trace stage with the right shape
// and layer and the same values, and give the same result with step markers as without.
#include "plugin_fixture.hpp"
#include "plugin_handle/device.hpp"
#include "plugin_handle/plugin_library.hpp"
#include "tiny_model.hpp"

using namespace kernel_tests;
using conformance::TinyModelSpec;
using conformance::TinyRun;

namespace {

// Logits and traced stages of a correct plugin differ from the cpu plugin's only by f32
// summation order: a normalised squared error far below 1e-8.
constexpr double kModelTolerance = 1e-8;

// The cpu plugin, loaded beside the plugin under test, with one device open.
class ReferencePlugin {
 public:
  ReferencePlugin() {
    const std::string& path = conformance::config().reference_plugin_path;
    if (path.empty()) throw conformance::CheckSkipped{"no reference (cpu) plugin was found"};
    lib_ = std::make_unique<apr::PluginLibrary>(path);
    const apr_plugin_api& api = lib_->api();
    host_ =
        apr_host{sizeof(apr_host), APR_ABI_MAJOR, APR_ABI_MINOR, "plugin-check", nullptr, nullptr};
    if (api.init(&host_) != APR_OK) throw std::runtime_error("reference plugin: init failed");
    device_ = std::make_unique<apr::Device>(api, apr::check_table(api), "reference cpu", 0, 0);
  }
  ~ReferencePlugin() {
    device_.reset();
    lib_->api().shutdown();
  }
  const apr_plugin_api& api() const { return lib_->api(); }
  apr_device* device() const { return device_->handle(); }

 private:
  std::unique_ptr<apr::PluginLibrary> lib_;
  apr_host host_{};
  std::unique_ptr<apr::Device> device_;
};

TinyModelSpec spec_for(Plugin& p,
                       conformance::TinyFamily family = conformance::TinyFamily::kQwen2) {
  TinyModelSpec s;
  s.family = family;
  // F16 first: no plugin quantizes activations for it, so the 1e-8 bound holds.
  for (uint32_t t : {apr_test::kF16, apr_test::kF32, apr_test::kQ8_0})
    if (p.claims(t)) {
      s.weight_type = t;
      break;
    }
  conformance::note(std::string("tiny model matrices are ") +
                    apr_test::ref_type_name(s.weight_type));
  return s;
}

// The gemma-like model needs every operation of ABI 1.3; a plugin without one skips its checks.
TinyModelSpec gemma_spec_or_skip(Plugin& p) {
  const std::pair<uint64_t, const char*> needed[] = {{APR_FEATURE_NORM_GROUPS, "NORM_GROUPS"},
                                                     {APR_FEATURE_ATTN_WINDOW, "ATTN_WINDOW"},
                                                     {APR_FEATURE_ATTN_SOFTCAP, "ATTN_SOFTCAP"},
                                                     {APR_FEATURE_GELU, "GELU"}};
  std::string missing;
  for (const auto& [bit, name] : needed)
    if (!p.has_feature(bit)) missing += std::string(missing.empty() ? "" : " ") + name;
  if (!p.has_unary()) missing += std::string(missing.empty() ? "" : " ") + "unary";
  if (!missing.empty())
    throw conformance::CheckSkipped{"the plugin lacks operations of ABI 1.3: " + missing};
  return spec_for(p, conformance::TinyFamily::kGemma);
}

const std::vector<std::vector<int32_t>> kBatches = {{3, 17, 0, 39, 8}, {21}, {5}, {5}};
// The gemma-like model's prompt comes in two batches, the second at pos0 5: rows at 5..7 see only
// the sliding window's 3 keys of layer 0, and the decode steps after them too.
const std::vector<std::vector<int32_t>> kGemmaBatches = {{3, 17, 0, 39, 8}, {21, 2, 9}, {5}, {5}};

const std::vector<std::vector<int32_t>>& batches_of(const TinyModelSpec& s) {
  return s.family == conformance::TinyFamily::kGemma ? kGemmaBatches : kBatches;
}

void compare(const std::vector<float>& got, const std::vector<float>& ref,
             const std::string& what) {
  std::vector<double> want(ref.begin(), ref.end());
  check_close(got, want, kModelTolerance, what);
}

void compare_runs(const TinyRun& got, const TinyRun& ref, const std::string& what) {
  REQUIRE(got.logits.size() == ref.logits.size());
  for (size_t i = 0; i < got.logits.size(); ++i)
    compare(got.logits[i], ref.logits[i], what + ", forward call " + std::to_string(i));
}

bool has_step_markers(const apr_plugin_api& api) {
  return api.abi_minor >= 2 && APR_STRUCT_HAS(&api, apr_plugin_api, step_end) && api.step_begin &&
         api.step_end;
}

// Expected shape of each stage of the tiny model for a batch of `rows` tokens at position pos0.
std::vector<uint64_t> stage_shape(const TinyModelSpec& s, apr_stage stage, uint64_t rows,
                                  uint64_t pos0) {
  const uint64_t q = s.n_head * s.head_dim, kv = s.n_head_kv * s.head_dim, qkv = q + 2 * kv;
  switch (stage) {
    case APR_STAGE_QKV_MATMUL:
    case APR_STAGE_QKV_BIAS:
      return {rows, qkv};
    case APR_STAGE_Q_NORM:
    case APR_STAGE_Q_POST_ROPE:
    case APR_STAGE_ATTENTION:
      return {rows, q};
    case APR_STAGE_K_NORM:
    case APR_STAGE_K_POST_ROPE:
      return {rows, kv};
    case APR_STAGE_ATTN_SCORES:
    case APR_STAGE_ATTN_SOFTMAX:
      return {s.n_head, rows, pos0 + rows};
    case APR_STAGE_FFN_GATE:
    case APR_STAGE_FFN_UP:
    case APR_STAGE_FFN_SILU:
    case APR_STAGE_FFN_SWIGLU:
    case APR_STAGE_FFN_GELU:
    case APR_STAGE_FFN_GEGLU:
      return {rows, s.n_ff};
    case APR_STAGE_LM_HEAD:
      return {s.n_vocab};
    default:
      return {rows, s.n_embd};
  }
}

// Logits of the plugin under test against the cpu plugin's, over the spec's batches.
void check_logits_against_cpu(Plugin& p, const TinyModelSpec& s) {
  ReferencePlugin ref;
  const auto& batches = batches_of(s);
  const TinyRun want = conformance::run_tiny_model(ref.api(), ref.device(), s, batches, false);
  const TinyRun got = conformance::run_tiny_model(p.api(), p.device(), s, batches, false);
  compare_runs(got, want, "logits");
}

// Logits of the plugin under test against the model in float64. F16 and F32 matrices are
// dequantized exactly, so only f32 activations separate them: a normalised squared error near
// 1e-13 after two layers. 1e-8 leaves room for any summation order, while a wrong operation costs
// 1e-6 or more (the gemma-like model, measured on the cpu plugin: GELU taken for SiLU 3e-6, the
// score cap ignored 7e-4, the window ignored 2e-3, one norm over all heads 1e-3, the logit cap
// ignored 7e-2). Q8_0 matrices may meet activations quantized to 8 bits (matmul's 1e-4 per
// product), so 1e-3 there.
void check_logits_against_float64(Plugin& p, const TinyModelSpec& s) {
  const auto& batches = batches_of(s);
  const std::vector<std::vector<double>> want = conformance::reference_tiny_model(s, batches);
  const TinyRun got = conformance::run_tiny_model(p.api(), p.device(), s, batches, false);
  const double tolerance = s.weight_type == apr_test::kQ8_0 ? 1e-3 : 1e-8;
  REQUIRE(got.logits.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i)
    check_close(got.logits[i], want[i], tolerance,
                "logits against float64, forward call " + std::to_string(i));
}

// Every stage the spec's model has is emitted once per layer with its shape, equal to the cpu
// plugin's; stages of other families are not emitted; tracing does not change the logits.
void check_trace(Plugin& p, const TinyModelSpec& s) {
  ReferencePlugin ref;
  const std::vector<std::vector<int32_t>> prompt = {batches_of(s)[0]};
  SinkRecorder want_rec, got_rec;
  want_rec.want_all = got_rec.want_all = true;
  const apr_trace_sink want_sink = want_rec.sink(), got_sink = got_rec.sink();
  conformance::run_tiny_model(ref.api(), ref.device(), s, prompt, false, &want_sink);
  const TinyRun traced =
      conformance::run_tiny_model(p.api(), p.device(), s, prompt, false, &got_sink);
  REQUIRE(got_rec.bad_emits == 0);
  const uint64_t rows = prompt[0].size();
  for (apr_stage stage = 0; stage < APR_STAGE_COUNT_V1_3; ++stage) {
    const bool whole_model = stage == APR_STAGE_FINAL_NORM || stage == APR_STAGE_LM_HEAD;
    if (!conformance::tiny_model_has_stage(s, stage)) {
      INFO("stage " << stage << " is not one of this model's");
      REQUIRE(got_rec.find(stage) == nullptr);
      continue;
    }
    for (uint32_t layer = 0; layer < (whole_model ? 1u : s.n_layer); ++layer) {
      const uint32_t l = whole_model ? APR_LAYER_NONE : layer;
      if (stage == APR_STAGE_EMBEDDING && layer > 0) continue;
      INFO("stage " << stage << " layer " << int64_t(l == APR_LAYER_NONE ? -1 : int64_t(l)));
      const SinkRecorder::Tensor* t = got_rec.find(stage, l);
      REQUIRE(t != nullptr);  // emitted
      REQUIRE(t->shape == stage_shape(s, stage, rows, 0));
      const SinkRecorder::Tensor* w = want_rec.find(stage, l);
      REQUIRE(w != nullptr);
      compare(t->data, w->data, "traced value");
    }
  }
  // Tracing must not change the result.
  const TinyRun plain = conformance::run_tiny_model(p.api(), p.device(), s, prompt, false);
  compare_runs(traced, plain, "logits with tracing vs without");
}

void check_steps(Plugin& p, const TinyModelSpec& s) {
  const auto& batches = batches_of(s);
  const TinyRun eager = conformance::run_tiny_model(p.api(), p.device(), s, batches, false);
  const TinyRun stepped = conformance::run_tiny_model(p.api(), p.device(), s, batches, true);
  compare_runs(stepped, eager, "logits with step markers vs without");
  // A discarded step must be accepted and leave the device usable.
  apr_step_args discard{};
  discard.struct_size = sizeof discard;
  discard.flags = APR_STEP_DISCARD;
  REQUIRE_APR_OK(p, p.api().step_end(p.device(), &discard));
  const TinyRun again = conformance::run_tiny_model(p.api(), p.device(), s, batches, false);
  compare_runs(again, eager, "logits after a discarded step");
}

}  // namespace

TEST_CASE("a tiny model's logits match the cpu plugin's (prompt, then decode steps)", "[model]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  check_logits_against_cpu(p, spec_for(p));
}

TEST_CASE("a tiny model's logits match the model in float64", "[model]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  check_logits_against_float64(p, spec_for(p));
}

TEST_CASE("tracing emits every stage with its shape and layer, equal to the cpu plugin's",
          "[model][trace]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  check_trace(p, spec_for(p));
}

TEST_CASE("steps bracketed by step_begin/step_end give the eager result", "[model][step]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  if (!has_step_markers(p.api())) {
    REQUIRE((p.api().abi_minor < 2 || !APR_STRUCT_HAS(&p.api(), apr_plugin_api, step_end) ||
             (!p.api().step_begin && !p.api().step_end)));  // both or neither
    conformance::note("the plugin has no step markers (allowed: it runs every call eagerly)");
    return;
  }
  check_steps(p, spec_for(p));
}

TEST_CASE("a gemma-like tiny model (every operation of ABI 1.3) matches the model in float64",
          "[model][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  check_logits_against_float64(p, gemma_spec_or_skip(p));
}

TEST_CASE("a gemma-like tiny model's logits match the cpu plugin's", "[model][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  check_logits_against_cpu(p, gemma_spec_or_skip(p));
}

TEST_CASE("tracing a gemma-like tiny model emits the stages of its family",
          "[model][trace][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  check_trace(p, gemma_spec_or_skip(p));
}

TEST_CASE("a gemma-like tiny model gives the eager result under step markers",
          "[model][step][family]") {
  KERNEL_TEST_PLUGIN_OR_SKIP(p);
  const TinyModelSpec s = gemma_spec_or_skip(p);
  if (!has_step_markers(p.api())) throw conformance::CheckSkipped{"the plugin has no step markers"};
  check_steps(p, s);
}
