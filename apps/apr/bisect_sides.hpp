// SPDX-License-Identifier: MIT
// The two sides of `apr bisect`: each may differ in backend, plugin directory (two builds of one
// backend), device, thread count and micro-batch size (--backend-a/-b, --plugin-dir-a/-b,
// --device-a/-b, --threads-a/-b, --ubatch-a/-b), the global options and --ubatch filling in.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "host/backend.hpp"

namespace apr::cli {

struct BisectSide {
  char name = 'a';  // 'a' or 'b'
  std::string backend;
  std::vector<std::string> plugin_dirs;  // searched before the global search path
  int64_t device = 0, threads = 0, ubatch = 0;
  bool any_option = false;  // some --*-b option was given (so B is a backend, not a reference)

  std::unique_ptr<host::PluginHost> own_host;  // when plugin_dirs is set
  host::Plugin* plugin = nullptr;

  // "vulkan 0.4.0 (ubatch 1, threads 2, plugins from build-old/lib/apr/plugins)"
  std::string describe() const;
};

// Adds the side's options to `desc`, storing into `side`.
void add_side_options(po::options_description_easy_init& add, BisectSide& side);

// Fills what was not given from the global options and `ubatch`, and range-checks. Throws
// UsageError.
void finish_side(BisectSide& side, const po::variables_map& vm, const GlobalOptions& global,
                 int64_t ubatch);

// Chooses the side's plugin (loading it), from its own plugin directories first when given.
void select_side_plugin(Context& ctx, BisectSide& side, const BackendNeeds& needs);

}  // namespace apr::cli
