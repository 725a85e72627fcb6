// SPDX-License-Identifier: MIT
// apr trace: one forward pass with the chosen stages of the chosen layers saved as APRT files.
#include <nlohmann/json.hpp>

#include <iostream>

#include "chat_prompt.hpp"
#include "cli.hpp"
#include "common/error.hpp"
#include "model/model.hpp"
#include "runtime/session.hpp"
#include "trace_capture/trace_plan.hpp"
#include "trace_capture/trace_run.hpp"
#include "trace_format/stages.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr [--backend=B] trace [MODEL] [--prompt TEXT [--chat] | --tokens IDS]
                 --save-tensor STAGES|all [--save-tensor-dir DIR]
                 [--save-tensor-layers START..END] [--decode-steps N [--step-tokens IDS]]
                 [--ubatch N] [--json]

Runs the prompt through MODEL and saves the chosen stages of the chosen layers as APRT files:
DIR/layer-N/<stage>.bin, DIR/<stage>.bin for final_norm and lm_head, and DIR/manifest.json.
The prompt runs as one batch, or in micro-batches of N rows with --ubatch N (stitched back into
one tensor per stage, so the files compare row for row with an unsplit trace). With
--decode-steps N, N greedy decode steps follow, one token each through the KV cache, and step k
is saved under DIR/step-k/ with the same names; the manifest lists each step's position and the
token it fed. Compare two such directories with `apr diff --values`. MODEL defaults to the
installed SmolLM2-135M-Instruct; --chat formats the prompt with the model's chat template.)";

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s;
  for (uint64_t d : shape) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

}  // namespace

int cmd_trace(Context& ctx, const std::vector<std::string>& args) {
  std::string model_path, prompt, tokens, stages, dir, layers, system, chat_template;
  std::string step_tokens;
  int64_t decode_steps = 0, ubatch = 0;
  bool chat = false, json = false;
  po::options_description desc("Options");
  auto add = desc.add_options();
  add("model,m", po::value(&model_path), "GGUF model file (default: the installed SmolLM2)");
  add("prompt,p", po::value(&prompt), "prompt text (default: \"What is 2+2?\")");
  add("tokens", po::value(&tokens), "prompt as comma-separated token ids instead of text");
  add("chat", po::bool_switch(&chat), "format the prompt as one user message for chat");
  add("system", po::value(&system), "with --chat: a system message before the prompt");
  add("chat-template", po::value(&chat_template), chat_template_option_help().c_str());
  add("json", po::bool_switch(&json), "print what was written as one JSON object");
  add("save-tensor", po::value(&stages),
      ("stages to save, comma-separated and case-insensitive, or all: " +
       trace::valid_stage_names())
          .c_str());
  add("save-tensor-dir", po::value(&dir), "output directory (default: <model-stem>-trace/)");
  add("save-tensor-layers", po::value(&layers),
      "layers START..END to save, END exclusive (default: 0..1)");
  add("decode-steps", po::value(&decode_steps)->default_value(0),
      "after the prompt, N greedy decode steps, each traced under DIR/step-k/");
  add("step-tokens", po::value(&step_tokens),
      "with --decode-steps: comma-separated token ids to feed at steps 1..N instead of the "
      "greedy choices");
  add("ubatch", po::value(&ubatch)->default_value(0),
      "evaluate the prompt in micro-batches of at most N tokens (0 = one batch)");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm, 0)) return kExitOk;

  if (vm.count("prompt") && vm.count("tokens"))
    throw UsageError("give at most one of --prompt and --tokens");
  if (chat && vm.count("tokens")) throw UsageError("--chat formats text; it cannot take --tokens");
  if (!chat && (vm.count("system") || vm.count("chat-template")))
    throw UsageError("--system and --chat-template need --chat");
  const auto forced_template = parse_chat_template_option(chat_template);
  in_range(decode_steps, "--decode-steps", 0, kMaxDecodeSteps);
  in_range(ubatch, "--ubatch", 0, UINT32_MAX);
  if (vm.count("step-tokens") && decode_steps == 0)
    throw UsageError("--step-tokens needs --decode-steps N");
  if (!vm.count("save-tensor"))
    throw UsageError("--save-tensor STAGES|all is required; valid stages: " +
                     trace::valid_stage_names());
  // The plan is checked before the model is loaded, so a typo fails fast.
  const trace::TracePlan plan(
      trace::parse_stage_list(stages),
      vm.count("save-tensor-layers") ? trace::parse_layer_range(layers) : trace::LayerRange{0, 1});

  model_path = model_or_default(vm, model_path);
  auto model = load_model(model_path);
  trace::TraceOptions options;
  options.model_path = model_path;
  options.n_threads = ctx.global.threads;
  options.device_index = ctx.global.device;
  options.decode_steps = static_cast<uint32_t>(decode_steps);
  options.ubatch = static_cast<uint32_t>(ubatch);
  if (vm.count("step-tokens")) {
    options.step_tokens = parse_token_list(step_tokens);
    if (options.step_tokens.size() != options.decode_steps)
      throw UsageError("--step-tokens gives " + std::to_string(options.step_tokens.size()) +
                       " ids for " + std::to_string(decode_steps) + " decode steps");
  }
  std::vector<int32_t> ids;
  if (vm.count("tokens")) {
    ids = parse_token_list(tokens);
  } else {
    options.prompt = vm.count("prompt") ? prompt : std::string(trace::kDefaultTracePrompt);
    if (chat) {
      const auto sys = vm.count("system") ? std::optional(system) : std::nullopt;
      ids = chat_prompt_tokens(*model, model_chat_template(*model, forced_template),
                               *options.prompt, sys, &*options.prompt);
    } else {
      ids = model->tokenizer().encode(*options.prompt);
    }
  }
  if (ids.empty()) throw UsageError("the prompt encodes to no tokens");

  const std::filesystem::path out = vm.count("save-tensor-dir")
                                        ? std::filesystem::path(dir)
                                        : trace::default_trace_dir(model_path);
  host::Plugin& plugin =
      select_backend(ctx.plugins(), ctx.global.backend, ctx.global.device, backend_needs(*model));
  const trace::TraceResult r = trace::trace_model(plugin, *model, ids, plan, out, options);

  for (const auto& note : r.notes) std::cerr << "apr: note: " << note << "\n";
  const auto& m = r.manifest;
  if (json) {
    nlohmann::json j;
    j["model"] = model_path;
    j["backend"] = m.backend;
    j["plugin_version"] = m.plugin_version;
    j["dir"] = out.string();
    j["token_ids"] = ids;
    j["ubatch"] = m.ubatch;
    j["steps"] = nlohmann::json::array();
    for (const auto& st : m.steps)
      j["steps"].push_back({{"step", st.step},
                            {"pos0", st.pos0},
                            {"tokens", st.tokens},
                            {"next_token", st.next_token ? nlohmann::json(*st.next_token)
                                                         : nlohmann::json(nullptr)}});
    j["files"] = nlohmann::json::array();
    for (const auto& f : m.files)
      j["files"].push_back(
          {{"path", f.path}, {"step", f.step}, {"shape", f.shape}, {"dtype", f.dtype}});
    j["manifest"] = trace::kManifestFileName;
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }
  std::cout << "traced " << ids.size() << " tokens of " << model_path << " on " << m.backend << " "
            << m.plugin_version << " into " << out.string() << "/\n";
  if (m.ubatch) std::cout << "  prompt in micro-batches of " << m.ubatch << " tokens, stitched\n";
  for (const auto& st : m.steps)
    if (st.step > 0)
      std::cout << "  step " << st.step << ": token " << st.tokens[0] << " at position " << st.pos0
                << " (step-" << st.step << "/)\n";
  for (const auto& f : m.files)
    std::cout << "  " << f.path << "  " << shape_text(f.shape) << " " << f.dtype << "\n";
  std::cout << "  " << trace::kManifestFileName << "\n";
  std::cout << "wrote " << m.files.size() << " stage files and the manifest\n";
  for (const auto& missing : r.not_emitted) {
    std::string where;
    for (uint32_t l : missing.layers)
      if (l != APR_LAYER_NONE) where += (where.empty() ? "" : ", ") + std::to_string(l);
    if (!where.empty()) where = (missing.layers.size() > 1 ? " in layers " : " in layer ") + where;
    std::cerr << "apr: note: no " << trace::stage_name(missing.stage) << " written" << where
              << ": the backend did not emit it\n";
  }
  return kExitOk;
}

}  // namespace apr::cli
