// SPDX-License-Identifier: MIT
#include "host/plugin_probe.hpp"

#include <spdlog/spdlog.h>

#include <signal.h>
#include <unistd.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <sstream>

#include "common/error.hpp"
#include "host/subprocess.hpp"

#ifndef APR_PROBE_HELPER_SUBDIR
#define APR_PROBE_HELPER_SUBDIR "libexec/apr"
#endif
#ifndef APR_INSTALLED_PROBE_HELPER
#define APR_INSTALLED_PROBE_HELPER "/usr/local/libexec/apr/apr-plugin-probe"
#endif

namespace fs = std::filesystem;

namespace apr::host {
namespace {

constexpr const char* kHelperName = "apr-plugin-probe";

// Words for the step names the helper reports, for one-line reasons.
std::string step_words(const std::string& phase) {
  if (phase == "load") return "loading (library constructors)";
  if (phase == "entry") return "the entry point";
  if (phase == "table") return "reading the function table";
  if (phase == "unload") return "unloading (library destructors)";
  if (phase.empty()) return "start-up";
  return phase;
}

ProbeReport refused(std::string phase, std::string reason) {
  ProbeReport r;
  r.usable = false;
  r.phase = std::move(phase);
  r.reason = std::move(reason);
  return r;
}

std::string seconds(std::chrono::milliseconds ms) {
  std::ostringstream s;
  s << static_cast<double>(ms.count()) / 1000.0;
  return s.str();
}

}  // namespace

bool probe_memory_limit_enforced() {
#if defined(__SANITIZE_ADDRESS__)
  return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return false;
#else
  return true;
#endif
#else
  return true;
#endif
}

fs::path default_probe_helper() {
  std::vector<fs::path> candidates;
  boost::dll::fs::error_code ec;
  const auto exe = boost::dll::program_location(ec);
  if (!ec) {
    const fs::path dir = fs::path(exe.string()).parent_path();
    candidates.push_back(dir.parent_path() / APR_PROBE_HELPER_SUBDIR / kHelperName);
    candidates.push_back(dir / kHelperName);
  }
  candidates.emplace_back(APR_INSTALLED_PROBE_HELPER);
  for (const auto& c : candidates)
    if (::access(c.c_str(), X_OK) == 0) return c;
  return {};
}

ProbeReport probe_out_of_process(const fs::path& plugin, const fs::path& helper,
                                 const ProbeLimits& limits) {
  if (helper.empty())
    return refused("", std::string("cannot probe: the helper ") + kHelperName +
                           " was not found beside apr (../" APR_PROBE_HELPER_SUBDIR
                           ") nor at " APR_INSTALLED_PROBE_HELPER);
  ChildLimits cl;
  cl.idle_timeout = limits.step_timeout;
  cl.data_limit_bytes = probe_memory_limit_enforced() ? limits.memory_bytes : 0;
  const ChildResult child = run_child({helper.string(), plugin.string()}, cl);
  if (!child.started) return refused("", "cannot probe: " + child.start_error);
  if (!child.stderr_tail.empty())
    spdlog::debug("probe of {} said: {}", plugin.string(), child.stderr_tail);

  std::string phase, report_json;
  uint64_t memory_at_crash = 0;
  std::istringstream lines(child.report);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("phase ", 0) == 0)
      phase = line.substr(6, 32);
    else if (line.rfind("report ", 0) == 0)
      report_json = line.substr(7);
    else if (line.rfind("memory ", 0) == 0)
      memory_at_crash = std::strtoull(line.c_str() + 7, nullptr, 10);
  }
  for (char& c : phase)  // it is printed; the helper writes only [a-z_]
    if (!((c >= 'a' && c <= 'z') || c == '_')) c = '?';
  const std::string during = " during " + step_words(phase);

  if (child.timed_out)
    return refused(phase, step_words(phase) + " took longer than " + seconds(limits.step_timeout) +
                              " s (killed)");
  if (child.signal) {
    std::string why = "crashed with " + signal_name(child.signal) + during;
    if (memory_at_crash)
      why += " after reaching its memory limit (" + std::to_string(limits.memory_bytes >> 20) +
             " MiB)";
    else if (child.signal == SIGKILL)
      why = "was killed with SIGKILL" + during + " (out of memory?)";
    return refused(phase, why);
  }
  if (report_json.empty() || child.report_truncated) {
    if (child.exit_code >= 0 && !phase.empty())
      return refused(phase, "called exit(" + std::to_string(child.exit_code) + ")" + during +
                                " (a plugin must never end the process)");
    return refused(phase, "the probe helper sent no report (exit status " +
                              std::to_string(child.exit_code) + ")");
  }
  try {
    return report_from_json(report_json);
  } catch (const Error& e) {
    return refused(phase, e.what());
  }
}

}  // namespace apr::host
