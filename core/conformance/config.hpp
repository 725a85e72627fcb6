// SPDX-License-Identifier: MIT
// What the conformance checks run against: set by the runner (apr plugin-check, the in-tree
// kernel suite) before any check starts.
#pragma once

#include <cstdint>
#include <string>

namespace conformance {

struct Config {
  std::string plugin_path;  // the plugin under test
  uint32_t device = 0;      // its device index
  std::string
      reference_plugin_path;  // the cpu plugin, for the whole-model comparison; may be empty
};

Config& config();

}  // namespace conformance
