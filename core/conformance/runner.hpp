// SPDX-License-Identifier: MIT
// Runs conformance checks, each in a child process (fork) so that a plugin that crashes, hangs or
// corrupts memory fails that one check and is reported, instead of taking the checker down.
// Shared by `apr plugin-check` and the in-tree kernel suite (tests/kernels).
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "config.hpp"

namespace conformance {

enum class Outcome { Pass, Fail, Skip };

struct CheckResult {
  std::string name;
  Outcome outcome = Outcome::Fail;
  std::string message;             // why it failed or was skipped
  std::vector<std::string> notes;  // e.g. weight types not claimed
  double seconds = 0;
};

struct RunOptions {
  std::string include_tag;   // only checks with this tag ("[fault]"); empty: all but [fault]
  unsigned timeout_s = 300;  // per check
  bool fork = true;          // false: run in this process (for debuggers)
};

// Extra checks registered by the program (apr plugin-check adds "loads like the host does").
void add_check(const std::string& name, const std::string& tags, void (*fn)());

// Runs every selected check against config(); `on_result` sees each result as it completes.
std::vector<CheckResult> run_checks(const RunOptions& options,
                                    const std::function<void(const CheckResult&)>& on_result);

// "PASS  name (0.3 s)" / "FAIL  name: message", notes indented below.
void print_line(std::ostream& out, const CheckResult& r);
// One JSON document: plugin, device, checks[], summary.
std::string results_json(const std::vector<CheckResult>& results);

}  // namespace conformance
