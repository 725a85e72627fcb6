// SPDX-License-Identifier: MIT
// apr bisect: traces every stage of every layer on two backends (or one backend against a
// reference trace) and names the first (layer, stage) in forward order where they part.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "chat_prompt.hpp"
#include "cli.hpp"
#include "common/error.hpp"
#include "model/model.hpp"
#include "runtime/session.hpp"
#include "trace_capture/trace_run.hpp"
#include "trace_compare/html_report.hpp"
#include "trace_compare/trace_compare.hpp"
#include "trace_format/atomic_file.hpp"
#include "trace_format/trace_dir.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr bisect [MODEL] --backend-a A (--backend-b B | --reference DIR)
                  [--prompt TEXT [--chat] | --tokens IDS] [--min-cosine X] [--max-nmse Y]
                  [--json] [--report FILE.html] [--keep DIR]

Traces every stage of every layer of MODEL on backend A and on backend B (or compares A with a
reference trace directory, e.g. from tools/hf_trace.py or tests/reference/ref_forward.py) and
names the first (layer, stage) in forward order that diverges: cosine similarity below X, NMSE
(sum (a-b)^2 / sum a^2, the error's energy relative to A's) above Y, or NaN/inf on one side
only. MODEL defaults to the installed SmolLM2-135M-Instruct; --chat formats the prompt for chat.
Exit status: 0 no divergence, 1 a divergence was found, 2 on errors, 3 no divergence among the
measured stages but some are UNMEASURED (the reference lacks them).)";

// A scratch directory for one bisect, removed on the way out unless the user keeps it.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "apr-bisect-XXXXXX").string();
    if (!::mkdtemp(tmpl.data()))
      throw Error("cannot create a temporary directory in " +
                  std::filesystem::temp_directory_path().string());
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

}  // namespace

int cmd_bisect(Context& ctx, const std::vector<std::string>& args) {
  std::string model_path, backend_a, backend_b, reference, prompt, tokens, report, keep;
  std::string system, chat_template;
  double min_cosine = trace::kDefaultMinCosine;
  double max_nmse = trace::kDefaultMaxNmse;
  bool json = false, chat = false;
  po::options_description desc("Options");
  auto add = desc.add_options();
  add("model,m", po::value(&model_path), "GGUF model file (default: the installed SmolLM2)");
  add("backend-a", po::value(&backend_a), "first backend (default: the global --backend)");
  add("backend-b", po::value(&backend_b), "second backend");
  add("reference", po::value(&reference), "trace directory to compare backend A against");
  add("prompt,p", po::value(&prompt), "prompt text (default: \"What is 2+2?\")");
  add("tokens", po::value(&tokens), "prompt as comma-separated token ids instead of text");
  add("chat", po::bool_switch(&chat), "format the prompt as one user message for chat");
  add("system", po::value(&system), "with --chat: a system message before the prompt");
  add("chat-template", po::value(&chat_template), chat_template_option_help().c_str());
  add("min-cosine", po::value(&min_cosine)->default_value(trace::kDefaultMinCosine, "0.999"),
      "cosine similarity below which a stage counts as diverged");
  add("max-nmse", po::value(&max_nmse)->default_value(trace::kDefaultMaxNmse, "1e-5"),
      "NMSE (sum (a-b)^2 / sum a^2: the error's energy relative to A's) above which a stage "
      "counts as diverged; it sees a wrong scale, which cosine cannot (b = 1.01 a gives 1e-4, "
      "1.5 a gives 0.25); inf leaves NMSE out of the verdict");
  add("json", po::bool_switch(&json), "print one JSON object (apr-bisect-v1)");
  add("report", po::value(&report), "also write a self-contained HTML heat map to FILE");
  add("keep", po::value(&keep), "keep the traces in DIR/a and DIR/b instead of a temporary dir");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm, 0)) return kExitOk;

  if (vm.count("backend-b") == vm.count("reference"))
    throw UsageError("give exactly one of --backend-b and --reference");
  if (vm.count("prompt") && vm.count("tokens"))
    throw UsageError("give at most one of --prompt and --tokens");
  if (chat && !vm.count("prompt")) throw UsageError("--chat needs --prompt TEXT");
  if (!chat && (vm.count("system") || vm.count("chat-template")))
    throw UsageError("--system and --chat-template need --chat");
  const auto forced_template = parse_chat_template_option(chat_template);
  if (!report.empty()) check_output_path(report, "--report");
  if (!std::isfinite(min_cosine) || min_cosine < -1 || min_cosine > 1)
    throw UsageError("--min-cosine must be a number in [-1, 1]");
  if (std::isnan(max_nmse) || max_nmse < 0)
    throw UsageError("--max-nmse must be a number >= 0 (inf: no NMSE test)");
  if (!vm.count("backend-a")) backend_a = ctx.global.backend;

  // Read the reference first: a bad directory should fail before minutes of tracing.
  std::optional<trace::TraceDirectory> ref;
  if (vm.count("reference")) ref = trace::list_trace_directory(reference);

  model_path = model_or_default(vm, model_path);
  auto model = load_model(model_path);
  const uint32_t n_layer = model->config().n_layer;
  trace::TraceOptions options;
  options.model_path = model_path;
  options.n_threads = ctx.global.threads;
  options.device_index = ctx.global.device;
  std::vector<int32_t> ids;
  if (vm.count("tokens")) {
    ids = parse_token_list(tokens);
  } else if (!vm.count("prompt") && ref && ref->manifest && !ref->manifest->token_ids.empty()) {
    // Without a prompt of its own, bisect replays the reference's tokens exactly.
    ids = ref->manifest->token_ids;
    options.prompt = ref->manifest->prompt;
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

  std::optional<ScratchDir> scratch;
  std::filesystem::path root;
  if (vm.count("keep")) {
    root = keep;
  } else {
    scratch.emplace();
    root = scratch->path();
  }

  const trace::TracePlan plan = trace::TracePlan::everything(n_layer);
  // Both backends are chosen before any tracing, so a typo in B fails at once.
  const std::vector<WeightNeed> needs = weight_needs(*model);
  host::Plugin& plugin_a = select_backend(ctx.plugins(), backend_a, ctx.global.device, needs);
  host::Plugin* plugin_b =
      ref ? nullptr : &select_backend(ctx.plugins(), backend_b, ctx.global.device, needs);
  std::cerr << "apr: tracing " << ids.size() << " tokens, " << n_layer << " layers on "
            << plugin_a.name() << "\n";
  const auto trace_a = trace::trace_model(plugin_a, *model, ids, plan, root / "a", options);
  std::string side_b;
  if (ref) {
    side_b = "reference " + reference;
  } else {
    std::cerr << "apr: tracing " << ids.size() << " tokens, " << n_layer << " layers on "
              << plugin_b->name() << "\n";
    trace::trace_model(*plugin_b, *model, ids, plan, root / "b", options);
    side_b = std::string(plugin_b->name()) + " " + std::string(plugin_b->version());
    ref = trace::list_trace_directory(root / "b");
  }

  const trace::TraceComparison c = trace::compare_directories(
      trace::list_trace_directory(root / "a"), *ref, trace::Thresholds{min_cosine, max_nmse});
  for (const auto& note : c.notes) std::cerr << "apr: note: " << note << "\n";
  const std::string side_a = trace_a.manifest.backend + " " + trace_a.manifest.plugin_version;
  const std::vector<std::pair<std::string, std::string>> facts = {
      {"model", model_path},
      {"architecture", model->config().arch_name},
      {"A", side_a},
      {"B", side_b},
      {"prompt", options.prompt.value_or("(token ids)")},
      {"token ids", join_ids(ids)}};

  if (!report.empty()) {
    const std::string html =
        trace::comparison_html(c, "apr bisect: " + side_a + " vs " + side_b, facts);
    trace::write_file_atomically(report,
                                 std::as_bytes(std::span<const char>(html.data(), html.size())));
  }
  if (json) {
    // The same facts under snake_case keys, as every JSON apr prints.
    const std::vector<std::pair<std::string, std::string>> keys = {
        {"model", facts[0].second},     {"architecture", facts[1].second},
        {"backend_a", facts[2].second}, {"backend_b", facts[3].second},
        {"prompt", facts[4].second},    {"token_ids", facts[5].second}};
    std::cout << trace::comparison_json(c, "apr-bisect-v1", keys);
  } else {
    std::cout << "A: " << side_a << "\nB: " << side_b << "\n"
              << trace::comparison_grid_text(c) << trace::divergence_summary(c);
    if (!report.empty()) std::cout << "report: " << report << "\n";
    if (vm.count("keep")) std::cout << "traces kept in " << root.string() << "/\n";
  }
  return c.exit_status();
}

}  // namespace apr::cli
