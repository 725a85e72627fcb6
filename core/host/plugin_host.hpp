// SPDX-License-Identifier: MIT
// Finds backend plugins and judges each file in a child process (plugin_probe.hpp), so a plugin
// that crashes, hangs, exits or floods memory is refused with its reason and never touches the
// apr process. Only the plugin a command selects is then loaded into this process, with
// Boost.DLL. Every file that is not accepted is kept as a Refusal; a plugin whose name an earlier
// one in the search path already has is kept as Shadowed.
#pragma once

#include <apr/plugin.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "host/plugin_info.hpp"

namespace apr::host {

class LoadedLibrary;

// A plugin that loaded, speaks our ABI major, initialised and said it is usable, as its probe
// child reported. Loading it into this process waits until api() is first needed.
class Plugin {
 public:
  Plugin(std::filesystem::path path, PluginInfo info);
  explicit Plugin(std::unique_ptr<LoadedLibrary> loaded, std::filesystem::path path);
  ~Plugin();
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  // Loads and initialises the plugin in this process on first use; throws apr::Error with the
  // reason when that fails (the file changed since it was probed, init failed, ...).
  const apr_plugin_api& api() const;
  bool loaded() const { return loaded_ != nullptr; }

  const std::filesystem::path& path() const { return path_; }
  uint32_t abi_minor() const { return info_.abi_minor; }  // negotiated: min(host, plugin)
  uint32_t score() const { return info_.score; }
  const std::string& probe_message() const { return info_.probe_message; }
  const std::vector<DeviceDesc>& devices() const { return info_.devices; }
  const std::string& name() const { return info_.name; }
  const std::string& version() const { return info_.version; }
  const std::string& description() const { return info_.description; }
  const std::vector<std::string>& aliases() const { return info_.aliases; }
  bool answers_to(std::string_view backend) const;  // its name or one of its aliases
  // Everything known about it: the probe child's answers until it is loaded, then its own.
  const PluginInfo& info() const { return info_; }

 private:
  std::filesystem::path path_;
  mutable PluginInfo info_;
  mutable std::unique_ptr<LoadedLibrary> loaded_;
};

struct Refusal {
  std::filesystem::path path;
  std::string reason;
};

// A usable plugin not offered because an earlier one in the search path has its name.
struct Shadowed {
  std::filesystem::path path;
  std::string name;
  std::filesystem::path by;  // the plugin that wins
};

struct SearchOptions {
  std::vector<std::filesystem::path> plugin_dirs;  // --plugin-dir, in order
  bool use_environment = true;                     // APR_PLUGIN_PATH
  bool use_install_dir = true;                     // the directory this build installs plugins to
  bool use_executable_dir = true;                  // beside the running executable

  // The apr-plugin-probe executable; empty: default_probe_helper().
  std::filesystem::path probe_helper;
  std::chrono::milliseconds probe_timeout{5000};  // per step of a probe
  uint64_t probe_memory_bytes = uint64_t{4} << 30;
  // Probe results are reused from the cache; `refresh_cache` probes anew (and stores).
  bool use_cache = true;
  bool refresh_cache = false;
  std::filesystem::path cache_dir;  // empty: ProbeCache::default_dir()
};

class PluginHost {
 public:
  explicit PluginHost(SearchOptions options);
  ~PluginHost();
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  // The directories searched, in order, without duplicates.
  const std::vector<std::filesystem::path>& search_path() const { return search_path_; }
  const std::vector<std::unique_ptr<Plugin>>& plugins() const { return plugins_; }
  const std::vector<Refusal>& refusals() const { return refusals_; }
  const std::vector<Shadowed>& shadowed() const { return shadowed_; }
  // How many plugin files were probed by a child this time (the rest came from the cache).
  size_t probed_now() const { return probed_now_; }
  // The probe cache file (empty without a cache).
  const std::filesystem::path& cache_file() const { return cache_file_; }

  // "auto" picks the best usable backend: the highest probe score (a CUDA or Vulkan GPU over cpu,
  // cpu over a software Vulkan device), ties broken in the order cuda, vulkan, cpu. The chosen
  // plugin is loaded into this process (no other is). Throws apr::Error naming what is available
  // when no plugin answers to `backend`, or why the chosen one failed to load.
  Plugin& select(std::string_view backend) const;

 private:
  std::vector<std::filesystem::path> candidates() const;

  std::vector<std::filesystem::path> search_path_;
  std::vector<std::unique_ptr<Plugin>> plugins_;
  std::vector<Refusal> refusals_;
  std::vector<Shadowed> shadowed_;
  size_t probed_now_ = 0;
  std::filesystem::path cache_file_;
};

// Loads exactly one plugin file into this process, with no probe child: for code that already
// runs isolated (the probe helper, a checker's child process) and for tests. Throws apr::Error
// carrying the refusal reason.
std::unique_ptr<Plugin> load_plugin(const std::filesystem::path& file);

// Where `apr` looks for plugins when no flag or variable says otherwise.
std::filesystem::path installed_plugin_dir();
std::filesystem::path executable_dir();

}  // namespace apr::host
