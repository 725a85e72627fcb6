// SPDX-License-Identifier: MIT
// apr bisect: traces every stage of every layer on two configurations (or one against a
// reference trace), prompt and decode steps, and names the first (step, layer, stage) in forward
// order where they part; optionally isolates that stage's kernel and exports it as a case.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>

#include <nlohmann/json.hpp>

#include "bisect_sides.hpp"
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
#include "trace_isolate/case_files.hpp"
#include "trace_isolate/isolate.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr bisect [MODEL] --backend-a A (--backend-b B | --reference DIR)
                  [--prompt TEXT [--chat] | --tokens IDS] [--decode-steps N [--step-tokens IDS]]
                  [--ubatch N] [--plugin-dir-a|-b DIR] [--device-a|-b N] [--threads-a|-b N]
                  [--ubatch-a|-b N] [--isolate] [--export-case DIR] [--min-cosine X]
                  [--max-nmse Y] [--json] [--report FILE.html] [--keep DIR]

Traces every stage of every layer of MODEL on side A and on side B (or compares A with a
reference trace directory, e.g. from tools/hf_trace.py or tests/reference/ref_forward.py) and
names the first (step, layer, stage) in forward order that diverges: cosine similarity below X,
NMSE (sum (a-b)^2 / sum a^2, the error's energy relative to A's) above Y, or NaN/inf on one side
only. MODEL defaults to the installed SmolLM2-135M-Instruct; --chat formats the prompt for chat.

The two sides may differ in backend, plugin build (--plugin-dir-b DIR), device, threads and
micro-batch size: `--backend-a cpu --backend-b cpu --ubatch-b 1` checks a backend's whole-prompt
evaluation against token-by-token evaluation through its KV cache. With --decode-steps N, N
greedy decode steps follow the prompt on both sides, B fed A's tokens (or --step-tokens) so that
a wrong token on B never hides where B first went wrong; bisect says when B's own greedy choice
would have differed. --isolate runs B's kernel of the first diverging stage again on A's
recorded inputs and says whether that kernel is wrong or its input was; --export-case DIR writes
that kernel call as a test for `apr plugin-check --case DIR PLUGIN`.
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

// The first step whose greedy choice differs between the sides: B would have fed another token
// at step k + 1. Compared over the steps both traced.
struct GreedyDifference {
  uint32_t after_step = 0;
  int32_t token_a = 0, token_b = 0;
};
std::optional<GreedyDifference> first_greedy_difference(const trace::Manifest& a,
                                                        const trace::Manifest& b) {
  for (size_t k = 0; k < std::min(a.steps.size(), b.steps.size()); ++k) {
    const auto& ta = a.steps[k].next_token;
    const auto& tb = b.steps[k].next_token;
    if (ta && tb && *ta != *tb) return GreedyDifference{uint32_t(k), *ta, *tb};
  }
  return std::nullopt;
}

std::string greedy_text(const GreedyDifference& g) {
  return "B's own greedy choice differs after step " + std::to_string(g.after_step) +
         ": it would feed token " + std::to_string(g.token_b) + " at step " +
         std::to_string(g.after_step + 1) + " where A feeds " + std::to_string(g.token_a) +
         " (B was fed A's tokens)";
}

std::string isolate_text(const isolate::Isolation& iso) {
  const std::string kernel = isolate::kernel_of(iso.kernel_case.stage);
  const std::string figures = "cosine " + trace::format_cosine_precise(iso.metrics.cosine_sim) +
                              ", NMSE " + trace::format_metric(iso.metrics.nmse) + ", max |diff| " +
                              trace::format_metric(iso.metrics.max_abs_diff);
  if (iso.kernel_at_fault)
    return "isolate: kernel: B's " + kernel + " is wrong on A's inputs (" + figures + ")";
  return "isolate: inherited: with A's inputs B's " + kernel + " agrees (" + figures +
         "); the error comes from upstream";
}

}  // namespace

int cmd_bisect(Context& ctx, const std::vector<std::string>& args) {
  std::string model_path, reference, prompt, tokens, report, keep, export_dir, step_tokens;
  std::string system, chat_template;
  double min_cosine = trace::kDefaultMinCosine;
  double max_nmse = trace::kDefaultMaxNmse;
  int64_t decode_steps = 0, ubatch = 0;
  bool json = false, chat = false, isolate_flag = false;
  BisectSide side_a, side_b;
  side_b.name = 'b';
  po::options_description desc("Options");
  auto add = desc.add_options();
  add("model,m", po::value(&model_path), "GGUF model file (default: the installed SmolLM2)");
  add_side_options(add, side_a);
  add_side_options(add, side_b);
  add("reference", po::value(&reference), "trace directory to compare side A against");
  add("prompt,p", po::value(&prompt), "prompt text (default: \"What is 2+2?\")");
  add("tokens", po::value(&tokens), "prompt as comma-separated token ids instead of text");
  add("chat", po::bool_switch(&chat), "format the prompt as one user message for chat");
  add("system", po::value(&system), "with --chat: a system message before the prompt");
  add("chat-template", po::value(&chat_template), chat_template_option_help().c_str());
  add("decode-steps", po::value(&decode_steps)->default_value(0),
      "after the prompt, N greedy decode steps on both sides, every stage of each compared");
  add("step-tokens", po::value(&step_tokens),
      "with --decode-steps: the token ids both sides are fed at steps 1..N (default: A's greedy "
      "choices)");
  add("ubatch", po::value(&ubatch)->default_value(0),
      "both sides evaluate the prompt in micro-batches of at most N tokens (0: one batch)");
  add("isolate", po::bool_switch(&isolate_flag),
      "at the first divergence, run B's kernel for that stage on A's recorded inputs: is the "
      "kernel wrong, or was its input?");
  add("export-case", po::value(&export_dir),
      "write the first divergence's kernel call (inputs, weights, A's output, tolerance) to DIR "
      "for `apr plugin-check --case DIR PLUGIN`");
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

  in_range(decode_steps, "--decode-steps", 0, kMaxDecodeSteps);
  in_range(ubatch, "--ubatch", 0, std::numeric_limits<int32_t>::max());
  finish_side(side_a, vm, ctx.global, ubatch);
  finish_side(side_b, vm, ctx.global, ubatch);
  if (!vm.count("backend-a")) side_a.backend = ctx.global.backend;
  const bool has_reference = vm.count("reference") != 0;
  if (has_reference && (vm.count("backend-b") || side_b.any_option))
    throw UsageError("--reference is side B: it takes no --*-b option");
  if (!has_reference && !vm.count("backend-b")) {
    if (!side_b.any_option) throw UsageError("give exactly one of --backend-b and --reference");
    side_b.backend = side_a.backend;  // the same backend, configured differently
  }
  if (has_reference && (isolate_flag || vm.count("export-case")))
    throw UsageError("--isolate and --export-case run side B's kernel: they need --backend-b");
  if (has_reference && decode_steps)
    throw UsageError("with --reference the decode steps are the reference's own");
  if (vm.count("step-tokens") && !decode_steps)
    throw UsageError("--step-tokens needs --decode-steps N");
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
  if (!export_dir.empty()) {
    std::error_code ec;
    if (std::filesystem::exists(export_dir, ec) &&
        !(std::filesystem::is_directory(export_dir, ec) &&
          std::filesystem::is_empty(export_dir, ec)))
      throw UsageError("--export-case " + export_dir + " exists and is not an empty directory");
  }

  // Read the reference first: a bad directory should fail before minutes of tracing.
  std::optional<trace::TraceDirectory> ref;
  if (has_reference) ref = trace::list_trace_directory(reference);

  model_path = model_or_default(vm, model_path);
  auto model = load_model(model_path);
  const uint32_t n_layer = model->config().n_layer;
  trace::TraceOptions options;
  options.model_path = model_path;
  options.decode_steps = static_cast<uint32_t>(decode_steps);
  if (vm.count("step-tokens")) {
    options.step_tokens = parse_token_list(step_tokens);
    if (options.step_tokens.size() != options.decode_steps)
      throw UsageError("--step-tokens gives " + std::to_string(options.step_tokens.size()) +
                       " ids for " + std::to_string(decode_steps) + " decode steps");
  }
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
  if (ref && ref->manifest && ref->manifest->steps.size() > 1) {
    // A reference with decode steps: A is fed the reference's tokens at its steps.
    options.decode_steps = static_cast<uint32_t>(ref->manifest->steps.size() - 1);
    for (size_t k = 1; k < ref->manifest->steps.size(); ++k)
      options.step_tokens.push_back(ref->manifest->steps[k].tokens.front());
  }

  std::optional<ScratchDir> scratch;
  std::filesystem::path root;
  if (vm.count("keep")) {
    root = keep;
  } else {
    scratch.emplace();
    root = scratch->path();
  }

  const trace::TracePlan plan = trace::TracePlan::everything(n_layer);
  // Both sides are chosen before any tracing, so a typo in B fails at once.
  const BackendNeeds needs = backend_needs(*model);
  select_side_plugin(ctx, side_a, needs);
  if (!ref) select_side_plugin(ctx, side_b, needs);
  auto trace_side = [&](const BisectSide& side, const std::filesystem::path& dir) {
    trace::TraceOptions o = options;
    o.n_threads = static_cast<uint32_t>(side.threads);
    o.device_index = static_cast<uint32_t>(side.device);
    o.ubatch = static_cast<uint32_t>(side.ubatch);
    std::cerr << "apr: tracing " << ids.size() << " tokens"
              << (o.decode_steps ? " and " + std::to_string(o.decode_steps) + " decode steps"
                                 : std::string())
              << ", " << n_layer << " layers on " << side.describe() << "\n";
    return trace::trace_model(*side.plugin, *model, ids, plan, dir, o);
  };
  const trace::TraceResult trace_a = trace_side(side_a, root / "a");
  std::optional<trace::TraceResult> trace_b;
  std::string desc_b;
  if (ref) {
    desc_b = "reference " + reference;
  } else {
    // B is fed A's tokens at every step, so a wrong token on B cannot hide where B went wrong.
    options.step_tokens.clear();
    for (size_t k = 1; k < trace_a.manifest.steps.size(); ++k)
      options.step_tokens.push_back(trace_a.manifest.steps[k].tokens.front());
    trace_b = trace_side(side_b, root / "b");
    desc_b = side_b.describe();
    ref = trace::list_trace_directory(root / "b");
  }

  const trace::TraceDirectory dir_a = trace::list_trace_directory(root / "a");
  const trace::Thresholds thresholds{min_cosine, max_nmse};
  const trace::TraceComparison c = trace::compare_directories(dir_a, *ref, thresholds);
  for (const auto& note : c.notes) std::cerr << "apr: note: " << note << "\n";
  const std::string desc_a = side_a.describe();
  const std::optional<GreedyDifference> greedy =
      trace_b ? first_greedy_difference(trace_a.manifest, trace_b->manifest) : std::nullopt;

  std::optional<isolate::Isolation> iso;
  if (c.first_divergence && (isolate_flag || !export_dir.empty())) {
    const trace::StageRow& r = c.rows[c.first_divergence->row];
    if (isolate_flag) {
      std::cerr << "apr: isolating " << isolate::kernel_of(r.stage) << " of " << trace::row_label(r)
                << " on " << desc_b << "\n";
      iso = isolate::isolate(*model, dir_a, *side_b.plugin, uint32_t(side_b.device),
                             uint32_t(side_b.threads), r.step, r.layer, r.stage,
                             uint32_t(side_b.ubatch), thresholds);
    }
    if (!export_dir.empty()) {
      const isolate::KernelCase kc =
          iso ? iso->kernel_case
              : isolate::case_from_trace(*model, dir_a, r.step, r.layer, r.stage,
                                         uint32_t(side_b.ubatch));
      isolate::write_case(
          kc, {min_cosine, max_nmse},
          {trace_a.manifest.model_path, trace_a.manifest.model_sha256, desc_a, desc_b}, export_dir);
    }
  }

  const std::vector<std::pair<std::string, std::string>> facts = {
      {"model", model_path},
      {"architecture", model->config().arch_name},
      {"A", desc_a},
      {"B", desc_b},
      {"prompt", options.prompt.value_or("(token ids)")},
      {"token ids", join_ids(ids)}};

  if (!report.empty()) {
    const std::string html =
        trace::comparison_html(c, "apr bisect: " + desc_a + " vs " + desc_b, facts);
    trace::write_file_atomically(report,
                                 std::as_bytes(std::span<const char>(html.data(), html.size())));
  }
  if (json) {
    // The same facts under snake_case keys, as every JSON apr prints.
    const std::vector<std::pair<std::string, std::string>> keys = {
        {"model", facts[0].second},     {"architecture", facts[1].second},
        {"backend_a", facts[2].second}, {"backend_b", facts[3].second},
        {"prompt", facts[4].second},    {"token_ids", facts[5].second}};
    auto j = nlohmann::ordered_json::parse(trace::comparison_json(c, "apr-bisect-v1", keys));
    j["decode_steps"] = trace_a.manifest.steps.empty() ? 0 : trace_a.manifest.steps.size() - 1;
    j["b_greedy_differs"] = greedy ? nlohmann::ordered_json{{"after_step", greedy->after_step},
                                                            {"token_a", greedy->token_a},
                                                            {"token_b", greedy->token_b}}
                                   : nlohmann::ordered_json(nullptr);
    if (iso)
      j["first_divergence"]["isolate"] = {
          {"verdict", iso->kernel_at_fault ? "kernel" : "inherited"},
          {"kernel", isolate::kernel_of(iso->kernel_case.stage)},
          {"cosine_sim", iso->metrics.cosine_sim},
          {"nmse", iso->metrics.nmse},
          {"max_abs_diff", iso->metrics.max_abs_diff}};
    if (!export_dir.empty())
      j["exported_case"] =
          c.first_divergence ? nlohmann::ordered_json(export_dir) : nlohmann::ordered_json(nullptr);
    std::cout << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "A: " << desc_a << "\nB: " << desc_b << "\n"
              << trace::comparison_grid_text(c) << trace::divergence_summary(c);
    if (greedy) std::cout << greedy_text(*greedy) << "\n";
    if (iso) std::cout << isolate_text(*iso) << "\n";
    if (!export_dir.empty())
      std::cout << (c.first_divergence
                        ? "case written to " + export_dir + "/ (replay: apr plugin-check --case " +
                              export_dir + " PLUGIN.so)"
                        : std::string("no divergence: no case written"))
                << "\n";
    if (!report.empty()) std::cout << "report: " << report << "\n";
    if (vm.count("keep")) std::cout << "traces kept in " << root.string() << "/\n";
  }
  return c.exit_status();
}

}  // namespace apr::cli
