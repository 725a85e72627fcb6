// SPDX-License-Identifier: MIT
// apr plugin-check: the conformance suite for a backend plugin, run the way a plugin author
// needs it: from the installed apr, against any .so, one line per check. The checks are the same
// code as the in-tree kernel suite (core/conformance); each runs in a child process, so a crash
// is a failed check, not a crashed checker.
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "check.hpp"
#include "cli.hpp"
#include "common/error.hpp"
#include "host/backend.hpp"
#include "host/plugin_host.hpp"
#include "runner.hpp"
#include "trace_compare/stage_diff.hpp"
#include "trace_format/stages.hpp"
#include "trace_isolate/case_files.hpp"

namespace apr::cli {
namespace {

constexpr int kExitNothingChecked = 77;  // the automake/CTest convention for "skipped"

constexpr const char* kUsage = R"(Usage: apr plugin-check PLUGIN.so [--device N] [--json]
       apr plugin-check --case DIR PLUGIN.so [--device N] [--json]

Checks a backend plugin against the plugin ABI (docs/PLUGIN-ABI.md): it loads the plugin as the
host does, then runs every kernel against float64 references on random data for every weight type
the plugin claims (stated per-type tolerances; guard bytes around every buffer; NaN fails), bad
arguments and struct_size edge cases, trace emission of every stage, and a tiny model compared
with the cpu plugin. Each check runs in its own process. Prints one line per check and a summary.
Exit status: 0 every check passed, 1 a check failed, 2 an error (bad arguments, a file that is
not a plugin), 77 nothing could be checked on this machine (every check skipped, e.g. no usable
device).

With --case DIR, replays one kernel call written by `apr bisect --export-case DIR` instead: its
weights, inputs and the output the reference side computed, with the tolerance bisect used. The
kernel runs alone on the plugin's device; exit 0 when its output agrees, 1 when it does not.)";

// "loads like the host does": the host's own loader (table checks, probe, init, devices).
void check_host_loads() {
  try {
    auto plugin = host::load_plugin(conformance::config().plugin_path);
    if (conformance::config().device >= plugin->devices().size())
      throw conformance::CheckFailure{"device " + std::to_string(conformance::config().device) +
                                      " does not exist (" +
                                      std::to_string(plugin->devices().size()) + " devices)"};
    conformance::note("backend '" + std::string(plugin->name()) + "', ABI 1." +
                      std::to_string(plugin->abi_minor()) + ", device " +
                      std::to_string(conformance::config().device) + ": " +
                      plugin->devices()[conformance::config().device].name);
  } catch (const apr::Error& e) {
    const std::string reason = e.what();
    if (reason.find("not usable on this machine") != std::string::npos)
      throw conformance::CheckSkipped{reason};
    throw conformance::CheckFailure{"the host refuses it: " + reason};
  }
}

// The cpu plugin for the whole-model comparison: beside this apr, or on the search path.
std::string find_reference_plugin(Context& ctx) {
  try {
    for (const auto& p : ctx.plugins().plugins())
      if (p->name() == "cpu") return p->path().string();
  } catch (const std::exception&) {
  }
  return {};
}

// --case: one exported kernel call against the plugin; 0 agrees, 1 does not.
int replay_case(Context& ctx, const std::string& dir, const std::string& plugin_path, bool json) {
  isolate::CaseTolerance tol;
  const isolate::KernelCase c = isolate::read_case(dir, &tol);
  auto plugin = host::load_plugin(plugin_path);
  auto device = open_device(*plugin, ctx.global.device, ctx.global.threads);
  const isolate::CaseTensor got = isolate::run_case(c, *device);
  if (got.values.size() != c.expected.values.size())
    throw Error("the plugin's " + std::string(isolate::kernel_of(c.stage)) + " emitted " +
                std::to_string(got.values.size()) + " values of " +
                std::string(trace::stage_name(c.stage)) + ", the case expects " +
                std::to_string(c.expected.values.size()));
  trace::DiffMetrics m = trace::compare_values(c.expected.values, got.values, 5);
  if (c.stage == APR_STAGE_LM_HEAD)
    m.logits = trace::compare_logits(c.expected.values, got.values, 0);
  const trace::Thresholds t{tol.min_cosine, tol.max_nmse};
  const bool ok = m.passes(t);
  const std::string kernel = isolate::kernel_of(c.stage), stage(trace::stage_name(c.stage));
  const std::string what =
      (kernel == stage ? stage : kernel + " for " + stage) +
      (c.layer == APR_LAYER_NONE ? "" : " of layer " + std::to_string(c.layer)) + " at step " +
      std::to_string(c.step);
  if (json) {
    nlohmann::json j = {
        {"schema", "apr-plugin-check-case-v1"},
        {"case", dir},
        {"plugin", plugin_path},
        {"backend", std::string(plugin->name())},
        {"kernel", isolate::kernel_of(c.stage)},
        {"stage", std::string(trace::stage_name(c.stage))},
        {"layer", c.layer == APR_LAYER_NONE ? nlohmann::json(nullptr) : nlohmann::json(c.layer)},
        {"step", c.step},
        {"passed", ok},
        {"cosine_sim", m.cosine_sim},
        {"nmse", m.nmse},
        {"max_abs_diff", m.max_abs_diff},
        {"min_cosine", t.min_cosine},
        {"max_nmse", t.max_nmse}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << (ok ? "PASS  " : "FAIL  ") << what << " on " << plugin->name() << ": cosine "
              << trace::format_cosine_precise(m.cosine_sim) << ", NMSE "
              << trace::format_metric(m.nmse) << ", max |diff| "
              << trace::format_metric(m.max_abs_diff);
    if (!ok) std::cout << " (" << trace::failure_reasons(m, t) << ")";
    std::cout << "\n";
  }
  return ok ? kExitOk : kExitDiverged;
}

}  // namespace

int cmd_plugin_check(Context& ctx, const std::vector<std::string>& args) {
  bool json = false;
  std::string path, case_dir;
  po::options_description desc("Options");
  desc.add_options()("json", po::bool_switch(&json), "print one JSON document instead")(
      "case", po::value<std::string>(&case_dir),
      "replay the kernel call that `apr bisect --export-case DIR` wrote")(
      "plugin", po::value<std::string>(&path), "the plugin file");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"plugin"}, kUsage, vm)) return kExitOk;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw UsageError("'" + path + "' is not a file");
  if (vm.count("case")) return replay_case(ctx, case_dir, std::filesystem::absolute(path), json);

  conformance::Config& config = conformance::config();
  config.plugin_path = std::filesystem::absolute(path).string();
  config.device = ctx.global.device;
  config.reference_plugin_path = find_reference_plugin(ctx);
  conformance::add_check("loads like the host does (handshake, probe, init, devices)", "[load]",
                         check_host_loads);

  if (!json)
    std::cout << "apr plugin-check " << config.plugin_path << " (device " << config.device << ")\n";
  std::cout.flush();
  conformance::RunOptions options;
  const auto results = conformance::run_checks(options, [&](const conformance::CheckResult& r) {
    if (!json) {
      conformance::print_line(std::cout, r);
      std::cout.flush();
    }
  });
  size_t passed = 0, failed = 0, skipped = 0;
  for (const auto& r : results)
    (r.outcome == conformance::Outcome::Pass   ? passed
     : r.outcome == conformance::Outcome::Skip ? skipped
                                               : failed)++;
  if (json) {
    std::cout << conformance::results_json(results) << "\n";
  } else {
    std::cout << "summary: " << passed << " passed, " << failed << " failed, " << skipped
              << " skipped of " << results.size() << " checks\n";
  }
  if (failed > 0) return 1;
  if (passed == 0) {
    // Its own status, so a test harness can tell "this machine cannot run the plugin" (a skip)
    // from an error, which must never read as one.
    if (!json)
      std::cerr << "apr: nothing could be checked on this machine (see the SKIP reasons)\n";
    return kExitNothingChecked;
  }
  return kExitOk;
}

}  // namespace apr::cli
