// SPDX-License-Identifier: MIT
// A plugin library loaded into this process and its function table: the one way the host, the
// conformance suite and the tests load a plugin. It checks nothing the plugin says beyond what is
// needed to hold the table; check_table is the host's judgement of the table itself.
#pragma once

#include <apr/plugin.h>

#include <filesystem>
#include <functional>
#include <memory>

namespace apr {

// Called with the name of each step before it starts ("load", "entry"), so a caller can report
// where a plugin died.
using PhaseFn = std::function<void(const char* phase)>;

class PluginLibrary {
 public:
  // Loads `file` (RTLD_NOW | RTLD_LOCAL) and calls its entry point for this host's ABI. Throws
  // apr::Error: "cannot load: <dlerror>", "no entry symbol ...", "entry point returned no
  // function table ...". The dlerror text is the loader's, unfiltered.
  explicit PluginLibrary(const std::filesystem::path& file, const PhaseFn& phase = {});
  ~PluginLibrary();
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;

  const apr_plugin_api& api() const { return *api_; }
  const std::filesystem::path& path() const { return path_; }
  // Unloads the library; the table is gone afterwards (the destructor does the same).
  void unload();

 private:
  struct Library;
  std::unique_ptr<Library> lib_;
  const apr_plugin_api* api_ = nullptr;
  std::filesystem::path path_;
};

// Checks the table's version, size and required members; returns the negotiated minor version
// (min of the host's and the plugin's). Throws apr::Error naming the defect.
uint32_t check_table(const apr_plugin_api& table);

}  // namespace apr
