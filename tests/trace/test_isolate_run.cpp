// SPDX-License-Identifier: MIT
// Kernel cases run on real plugins, for a tiny model of every family (family_models.hpp):
//  - every stage of a cpu-plugin trace (prompt and decode steps), isolated on the cpu plugin,
//    agrees with that trace, and so does the same case written to a directory, read back and
//    replayed (so case.json carries every constant the kernel is called with);
//  - a plugin that lacks an operation of ABI 1.3 a case needs is refused with the one-line reason
//    before anything runs: the example plugin (1.3, no 1.3 feature, no unary kernel) and the same
//    plugin built against the frozen 1.2 header.
#include <catch2/catch.hpp>

#include <fstream>

#include "common/error.hpp"
#include "family_models.hpp"
#include "host/backend.hpp"
#include "host/plugin_host.hpp"
#include "model/model.hpp"
#include "test_support.hpp"
#include "trace_capture/trace_plan.hpp"
#include "trace_capture/trace_run.hpp"
#include "trace_format/stages.hpp"
#include "trace_format/trace_dir.hpp"
#include "trace_isolate/case_files.hpp"
#include "trace_isolate/isolate.hpp"

using namespace apr;
using namespace apr::isolate;
using apr::trace::testing::family_model_gguf;
using apr::trace::testing::ScratchDir;

namespace {

struct Traced {
  ScratchDir dir;
  std::filesystem::path model_path;
  std::unique_ptr<Model> model;
  trace::TraceDirectory a;

  // A tiny model of `arch` and, when `plugin` is given, its trace on it: a prompt of 4 tokens
  // (past gemma's window of 2 and, with the steps, phi3's original context of 4) and 2 decode
  // steps, the prompt in micro-batches of `ubatch` rows.
  Traced(const std::string& arch, const host::Plugin* plugin, uint32_t ubatch = 0)
      : dir("isolate-" + arch) {
    model_path = dir.path() / (arch + ".gguf");
    const std::vector<uint8_t> bytes = family_model_gguf(arch);
    std::ofstream(model_path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    model = Model::load(model_path);
    if (!plugin) return;
    trace::TraceOptions o;
    o.model_path = model_path;
    o.n_threads = 1;
    o.decode_steps = 2;
    o.step_tokens = {11, 12};
    o.ubatch = ubatch;
    const std::vector<int32_t> tokens = {4, 9, 4, 17};
    trace::trace_model(*plugin, *model, tokens,
                       trace::TracePlan::everything(model->config().n_layer), dir.path() / "a", o);
    a = trace::list_trace_directory(dir.path() / "a");
  }
};

std::string refusal(const KernelCase& c, const host::Plugin& plugin) {
  auto device = open_device(plugin, 0, 1);
  try {
    run_case(c, *device);
  } catch (const Error& e) {
    return e.what();
  }
  return "<not refused>";
}

}  // namespace

TEST_CASE("every stage of every family isolates on the cpu plugin as its own trace has it",
          "[trace][case][families][plugin]") {
  const auto cpu = host::load_plugin(CPU_PLUGIN_PATH);
  // Tighter than bisect's verdict: the same plugin on the same inputs.
  const trace::Thresholds strict{0.999999, 1e-10};
  for (const std::string& arch : trace::testing::family_names()) {
    for (uint32_t ubatch : {0u, 3u}) {
      DYNAMIC_SECTION(arch << " ubatch " << ubatch) {
        const Traced t(arch, cpu.get(), ubatch);
        REQUIRE(t.a.files.size() > 40);
        size_t replayed = 0;
        for (const trace::TraceFile& f : t.a.files) {
          INFO(arch << " step " << f.step << " layer " << f.layer << " "
                    << trace::stage_name(f.stage));
          const Isolation iso =
              isolate::isolate(*t.model, t.a, *cpu, 0, 1, f.step, f.layer, f.stage, ubatch, strict);
          CHECK(iso.metrics.nmse <= 1e-10);
          CHECK_FALSE(iso.kernel_at_fault);
          // Through the case directory: what a plugin author replays with plugin-check --case.
          const auto dir = t.dir.path() / "cases" /
                           (std::to_string(f.step) + "-" + std::to_string(f.layer) + "-" +
                            std::string(trace::stage_name(f.stage)));
          write_case(iso.kernel_case, {}, {}, dir);
          const KernelCase back = read_case(dir);
          auto device = open_device(*cpu, 0, 1);
          const CaseTensor got = run_case(back, *device);
          REQUIRE(got.values.size() == back.expected.values.size());
          const trace::DiffMetrics m = trace::compare_values(back.expected.values, got.values, 1);
          CHECK(m.passes(strict));
          ++replayed;
        }
        CHECK(replayed == t.a.files.size());
      }
    }
  }
}

TEST_CASE("a plugin without an operation a case needs is refused, saying which",
          "[trace][case][families][plugin]") {
  const auto example = host::load_plugin(EXAMPLE_PLUGIN_PATH);
  REQUIRE(example->abi_minor() == APR_ABI_MINOR);
  const auto old = host::load_plugin(EXAMPLE_V1_2_PLUGIN_PATH);
  REQUIRE(old->abi_minor() == 2);

  // Cases built from a synthetic trace are enough: the refusal comes before any kernel runs.
  auto case_of = [](const std::string& arch, uint32_t layer, apr_stage stage) {
    const Traced t(arch, nullptr);
    KernelCase c;
    c.stage = stage;
    c.layer = trace::is_whole_model_stage(stage) ? APR_LAYER_NONE : layer;
    c.n_rows = 1;
    c.config = t.model->config();
    return c;
  };
  CHECK(refusal(case_of("qwen3", 0, APR_STAGE_Q_NORM), *example) ==
        "backend 'example' (device 0) lacks per-head RMSNorm of Q and K, which this q_norm case "
        "needs");
  CHECK(refusal(case_of("gemma2", 0, APR_STAGE_ATTENTION), *example) ==
        "backend 'example' (device 0) lacks sliding-window attention, soft-capped attention "
        "scores, which this attention case needs");
  CHECK(refusal(case_of("gemma3", 1, APR_STAGE_FFN_GELU), *example) ==
        "backend 'example' (device 0) lacks the GELU-gated feed-forward, which this ffn_gelu case "
        "needs");
  CHECK(refusal(case_of("gemma2", 0, APR_STAGE_LM_HEAD), *example) ==
        "backend 'example' (device 0) lacks the unary kernel (logit soft-cap), which this lm_head "
        "case needs");
  CHECK(refusal(case_of("gemma3", 0, APR_STAGE_K_NORM), *old) ==
        "backend 'example-v1-2' speaks plugin ABI 1.2, but this k_norm case needs ABI 1.3 for "
        "per-head RMSNorm of Q and K");
  // A case that needs nothing new is not refused (it fails later, for want of inputs).
  CHECK_THAT(refusal(case_of("qwen3", 0, APR_STAGE_K_POST_ROPE), *old),
             Catch::Contains("no input 'qkv', 'q' or 'k'"));
}
