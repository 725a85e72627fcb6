// SPDX-License-Identifier: MIT
// Judges one plugin file in a child process (the apr-plugin-probe helper), so a plugin that
// crashes, hangs, exits or floods memory is refused with that reason instead of taking apr down.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>

#include "host/probe_report.hpp"

namespace apr::host {

struct ProbeLimits {
  std::chrono::milliseconds step_timeout{5000};  // per step (load, probe, init, ...)
  uint64_t memory_bytes = uint64_t{4} << 30;     // RLIMIT_DATA of the child
};

// Never throws for anything the plugin does: every outcome is a ProbeReport. `helper` is the
// apr-plugin-probe executable.
ProbeReport probe_out_of_process(const std::filesystem::path& plugin,
                                 const std::filesystem::path& helper, const ProbeLimits& limits);

// False in an AddressSanitizer build: its shadow memory is a private writable mapping of many
// terabytes, which RLIMIT_DATA would forbid, so the child runs without a memory limit there.
bool probe_memory_limit_enforced();

// Where the apr-plugin-probe helper of this build or installation is: beside the running
// executable in ../libexec/apr (build and install trees alike), else the configured install
// directory. Empty when none exists.
std::filesystem::path default_probe_helper();

}  // namespace apr::host
