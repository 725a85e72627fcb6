// apr trace: one forward pass with the chosen stages of the chosen layers saved as APRT files.
#include <iostream>

#include "cli.hpp"
#include "common/error.hpp"
#include "model/model.hpp"
#include "trace/stages.hpp"
#include "trace/trace_plan.hpp"
#include "trace/trace_run.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr [--backend=B] trace MODEL [--prompt TEXT | --tokens IDS] --save-tensor STAGES|all
                 [--save-tensor-dir DIR] [--save-tensor-layers START..END]

Runs the prompt through MODEL once, as one batch, and saves the chosen stages of the chosen
layers as APRT files: DIR/layer-N/<stage>.bin, DIR/<stage>.bin for final_norm and lm_head, and
DIR/manifest.json. Compare two such directories with `apr diff --values`.)";

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s;
  for (uint64_t d : shape) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

}  // namespace

int cmd_trace(Context& ctx, const std::vector<std::string>& args) {
  std::string model_path, prompt, tokens, stages, dir, layers;
  po::options_description desc("Options");
  auto add = desc.add_options();
  add("model", po::value(&model_path), "GGUF model file");
  add("prompt,p", po::value(&prompt), "prompt text (default: \"What is 2+2?\")");
  add("tokens", po::value(&tokens), "prompt as comma-separated token ids instead of text");
  add("save-tensor", po::value(&stages),
      ("stages to save, comma-separated and case-insensitive, or all: " +
       trace::valid_stage_names())
          .c_str());
  add("save-tensor-dir", po::value(&dir), "output directory (default: <model-stem>-trace/)");
  add("save-tensor-layers", po::value(&layers),
      "layers START..END to save, END exclusive (default: 0..1)");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm)) return kExitOk;

  if (vm.count("prompt") && vm.count("tokens"))
    throw UsageError("give at most one of --prompt and --tokens");
  if (!vm.count("save-tensor"))
    throw UsageError("--save-tensor STAGES|all is required; valid stages: " +
                     trace::valid_stage_names());
  // The plan is checked before the model is loaded, so a typo fails fast.
  const trace::TracePlan plan(
      trace::parse_stage_list(stages),
      vm.count("save-tensor-layers") ? trace::parse_layer_range(layers) : trace::LayerRange{0, 1});

  auto model = load_model(model_path);
  trace::TraceOptions options;
  options.model_path = model_path;
  options.n_threads = ctx.global.threads;
  options.device_index = ctx.global.device;
  std::vector<int32_t> ids;
  if (vm.count("tokens")) {
    ids = parse_token_list(tokens);
  } else {
    options.prompt = vm.count("prompt") ? prompt : std::string(trace::kDefaultTracePrompt);
    ids = model->tokenizer().encode(*options.prompt);
  }
  if (ids.empty()) throw UsageError("the prompt encodes to no tokens");

  const std::filesystem::path out = vm.count("save-tensor-dir")
                                        ? std::filesystem::path(dir)
                                        : trace::default_trace_dir(model_path);
  host::Plugin& plugin = ctx.plugins().select(ctx.global.backend);
  const trace::TraceResult r = trace::trace_model(plugin, *model, ids, plan, out, options);

  const auto& m = r.manifest;
  std::cout << "traced " << ids.size() << " tokens of " << model_path << " on " << m.backend << " "
            << m.plugin_version << " into " << out.string() << "/\n";
  for (const auto& f : m.files)
    std::cout << "  " << f.path << "  " << shape_text(f.shape) << " " << f.dtype << "\n";
  std::cout << "  " << trace::kManifestFileName << "\n";
  std::cout << "wrote " << m.files.size() << " stage files and the manifest\n";
  for (const auto& missing : r.not_emitted) {
    std::string where;
    for (uint32_t l : missing.layers)
      if (l != APR_LAYER_NONE) where += (where.empty() ? "" : ", ") + std::to_string(l);
    if (!where.empty()) where = (missing.layers.size() > 1 ? " in layers " : " in layer ") + where;
    const bool bias = missing.stage == APR_STAGE_QKV_BIAS && !model->config().has_qkv_bias;
    std::cerr << "apr: note: no " << trace::stage_name(missing.stage) << " written" << where
              << (bias ? ": this model has no QKV biases" : ": the backend did not emit it")
              << "\n";
  }
  return kExitOk;
}

}  // namespace apr::cli
