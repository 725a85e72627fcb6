// SPDX-License-Identifier: MIT
// The answer about one plugin file that a probe child sends to the host and the probe cache keeps:
// usable with its PluginInfo, or refused with the phase and a one-line reason.
#pragma once

#include <string>
#include <string_view>

#include "host/plugin_info.hpp"

namespace apr::host {

struct ProbeReport {
  bool usable = false;
  std::string phase;   // the step a refusal happened in (load, entry, table, probe, init, ...)
  std::string reason;  // one line, when !usable
  PluginInfo info;     // when usable
};

// One line of JSON.
std::string to_json(const ProbeReport& report);

// Parses and re-checks every field against the bounds of plugin_info.hpp, since the text comes
// from a process that ran plugin code, or from a cache file anyone may have edited. Throws
// apr::Error("malformed probe report: ...").
ProbeReport report_from_json(std::string_view text);

}  // namespace apr::host
