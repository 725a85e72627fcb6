// SPDX-License-Identifier: MIT
// Loads one plugin library into the calling process and runs the start-up sequence the host
// relies on (entry point, table checks, probe, init, devices), checking every string and count
// the plugin returns. The probe child runs it to judge a plugin; the host runs it again in its own
// process only for the plugin it selected.
#pragma once

#include <apr/plugin.h>

#include <filesystem>
#include <functional>
#include <memory>

#include "host/plugin_info.hpp"
#include "plugin_handle/plugin_library.hpp"

namespace apr::host {

// Called with the name of each step before it starts ("load", "entry", "table", "probe", "init",
// "device_count", "device_info", "shutdown", "unload"), so a child can report where it died.
using PhaseFn = apr::PhaseFn;

class LoadedLibrary {
 public:
  // Throws apr::Error with the refusal reason; a plugin that fails after init is shut down.
  static std::unique_ptr<LoadedLibrary> load(const std::filesystem::path& file,
                                             const PhaseFn& phase = {});
  ~LoadedLibrary();
  LoadedLibrary(const LoadedLibrary&) = delete;
  LoadedLibrary& operator=(const LoadedLibrary&) = delete;

  const apr_plugin_api& api() const { return *api_; }
  const PluginInfo& info() const { return info_; }
  // Calls shutdown and unloads the library (the destructor does the same, without phases).
  void close(const PhaseFn& phase = {});

 private:
  LoadedLibrary();
  void start(const PhaseFn& phase);

  std::unique_ptr<PluginLibrary> lib_;
  const apr_plugin_api* api_ = nullptr;
  apr_host host_{};
  PluginInfo info_;
  bool initialised_ = false;
};

using apr::check_table;  // plugin_handle/plugin_library.hpp

}  // namespace apr::host
