// Finds backend plugins, loads them with Boost.DLL, negotiates the ABI version, initialises and
// probes them. Every file that is not accepted is kept as a Refusal with its reason.
#pragma once

#include <apr/plugin.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace apr::host {

struct DeviceDesc {
  uint32_t index = 0;
  uint32_t kind = APR_DEVICE_KIND_OTHER;
  uint64_t memory_bytes = 0;
  std::string name;
  std::string description;
};

// A plugin that loaded, speaks our ABI major, initialised and said it is usable.
class Plugin {
 public:
  virtual ~Plugin() = default;
  virtual const apr_plugin_api& api() const = 0;
  virtual const std::filesystem::path& path() const = 0;
  virtual uint32_t abi_minor() const = 0;  // negotiated: min(host, plugin)
  virtual uint32_t score() const = 0;
  virtual const std::string& probe_message() const = 0;
  virtual const std::vector<DeviceDesc>& devices() const = 0;

  std::string_view name() const { return api().name; }
  std::string_view version() const { return api().version ? api().version : ""; }
  bool answers_to(std::string_view backend) const;  // its name or one of its aliases
  std::vector<std::string> aliases() const;
};

struct Refusal {
  std::filesystem::path path;
  std::string reason;
};

struct SearchOptions {
  std::vector<std::filesystem::path> plugin_dirs;  // --plugin-dir, in order
  bool use_environment = true;                     // APR_PLUGIN_PATH
  bool use_install_dir = true;                     // the directory this build installs plugins to
  bool use_executable_dir = true;                  // beside the running executable
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

  // "auto" picks the best usable backend: the highest probe score (a CUDA or Vulkan GPU over cpu,
  // cpu over a software Vulkan device), ties broken in the order cuda, vulkan, cpu.
  // Throws apr::Error naming what is available when no plugin answers to `backend`.
  Plugin& select(std::string_view backend) const;

 private:
  void load_directory(const std::filesystem::path& dir);
  void load_file(const std::filesystem::path& file);

  std::vector<std::filesystem::path> search_path_;
  std::vector<std::unique_ptr<Plugin>> plugins_;
  std::vector<Refusal> refusals_;
};

// Loads exactly one plugin file (used by tests and by PluginHost). Throws apr::Error carrying
// the refusal reason.
std::unique_ptr<Plugin> load_plugin(const std::filesystem::path& file);

// Where `apr` looks for plugins when no flag or variable says otherwise.
std::filesystem::path installed_plugin_dir();
std::filesystem::path executable_dir();

}  // namespace apr::host
