#include "host/plugin_host.hpp"

#include <spdlog/spdlog.h>

#include <dlfcn.h>
#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <utility>

#include "common/error.hpp"

#ifndef APR_INSTALLED_PLUGIN_DIR
#define APR_INSTALLED_PLUGIN_DIR "/usr/local/lib/apr/plugins"
#endif
#ifndef APR_PLUGIN_SUBDIR
#define APR_PLUGIN_SUBDIR "lib/apr/plugins"
#endif

namespace fs = std::filesystem;

namespace apr::host {
namespace {

constexpr std::string_view kPluginPrefix = "apr-plugin-";

void host_log(void*, int32_t level, const char* message) {
  if (!message) return;
  switch (level) {
    case APR_LOG_DEBUG:
      spdlog::debug("plugin: {}", message);
      break;
    case APR_LOG_INFO:
      spdlog::info("plugin: {}", message);
      break;
    case APR_LOG_WARN:
      spdlog::warn("plugin: {}", message);
      break;
    default:
      spdlog::error("plugin: {}", message);
      break;
  }
}

bool valid_backend_name(const char* name) {
  if (!name || !*name) return false;
  for (const char* p = name; *p; ++p) {
    const char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return std::strlen(name) <= 64;
}

// Returns the name of the first required 1.0 member that is NULL, or nullptr.
const char* first_missing_member(const apr_plugin_api& t) {
  const std::pair<const char*, bool> members[] = {
      {"init", t.init},
      {"shutdown", t.shutdown},
      {"probe", t.probe},
      {"error_message", t.error_message},
      {"device_count", t.device_count},
      {"device_info", t.device_info},
      {"device_open", t.device_open},
      {"device_close", t.device_close},
      {"set_trace_sink", t.set_trace_sink},
      {"buffer_alloc", t.buffer_alloc},
      {"buffer_free", t.buffer_free},
      {"buffer_write", t.buffer_write},
      {"buffer_read", t.buffer_read},
      {"synchronize", t.synchronize},
      {"weight_create", t.weight_create},
      {"weight_free", t.weight_free},
      {"embed", t.embed},
      {"rms_norm", t.rms_norm},
      {"matmul", t.matmul},
      {"add", t.add},
      {"rope", t.rope},
      {"kv_store", t.kv_store},
      {"attention", t.attention},
      {"swiglu", t.swiglu},
      {"trace_emit", t.trace_emit},
  };
  for (const auto& [name, present] : members)
    if (!present) return name;
  return nullptr;
}

std::string plugin_error(const apr_plugin_api& t) {
  const char* m = t.error_message ? t.error_message() : nullptr;
  return (m && *m) ? m : "no message";
}

class LoadedPlugin final : public Plugin {
 public:
  LoadedPlugin(boost::dll::shared_library lib, const apr_plugin_api* api, fs::path path)
      : lib_(std::move(lib)), api_(api), path_(std::move(path)) {}
  ~LoadedPlugin() override {
    if (initialised_) api_->shutdown();
  }

  const apr_plugin_api& api() const override { return *api_; }
  const fs::path& path() const override { return path_; }
  uint32_t abi_minor() const override { return minor_; }
  uint32_t score() const override { return score_; }
  const std::string& probe_message() const override { return probe_message_; }
  const std::vector<DeviceDesc>& devices() const override { return devices_; }

  // Runs the checks that follow the handshake; throws apr::Error with the refusal reason.
  void negotiate_and_start() {
    const apr_plugin_api& t = *api_;
    constexpr size_t header = offsetof(apr_plugin_api, abi_minor) + sizeof(uint32_t);
    if (t.struct_size < header)
      throw Error("function table is " + std::to_string(t.struct_size) +
                  " bytes, too small to hold a version");
    if (t.abi_major != APR_ABI_MAJOR)
      throw Error("ABI major version " + std::to_string(t.abi_major) + ", this host speaks " +
                  std::to_string(APR_ABI_MAJOR));
    if (t.struct_size < APR_PLUGIN_API_SIZE_V1_0)
      throw Error("function table is " + std::to_string(t.struct_size) + " bytes, ABI 1.0 needs " +
                  std::to_string(APR_PLUGIN_API_SIZE_V1_0));
    minor_ = std::min<uint32_t>(t.abi_minor, APR_ABI_MINOR);
    if (!valid_backend_name(t.name))
      throw Error("invalid backend name (want 1-64 chars of [a-z0-9_-])");
    if (const char* missing = first_missing_member(t))
      throw Error(std::string("function table member '") + missing + "' is NULL");

    apr_probe_result probe{};
    probe.struct_size = sizeof probe;
    if (t.probe(&probe) != APR_OK) throw Error("probe failed: " + plugin_error(t));
    probe.reason[sizeof probe.reason - 1] = '\0';
    score_ = probe.score;
    probe_message_ = probe.reason;
    if (score_ == 0)
      throw Error("not usable on this machine: " +
                  (probe_message_.empty() ? std::string("probe gave no reason") : probe_message_));

    host_.struct_size = sizeof host_;
    host_.abi_major = APR_ABI_MAJOR;
    host_.abi_minor = minor_;
    host_.host_version = "apr " APR_VERSION_STRING;
    host_.user_data = nullptr;
    host_.log = host_log;
    if (t.init(&host_) != APR_OK) throw Error("init failed: " + plugin_error(t));
    initialised_ = true;

    const uint32_t n = t.device_count();
    if (n == 0) throw Error("plugin reports no devices");
    for (uint32_t i = 0; i < n; ++i) {
      apr_device_info info{};
      info.struct_size = sizeof info;
      if (t.device_info(i, &info) != APR_OK)
        throw Error("device_info(" + std::to_string(i) + ") failed: " + plugin_error(t));
      info.name[sizeof info.name - 1] = '\0';
      info.description[sizeof info.description - 1] = '\0';
      devices_.push_back({i, info.kind, info.memory_bytes, info.name, info.description});
    }
  }

 private:
  boost::dll::shared_library lib_;
  const apr_plugin_api* api_;
  fs::path path_;
  apr_host host_{};
  uint32_t minor_ = 0;
  uint32_t score_ = 0;
  std::string probe_message_;
  std::vector<DeviceDesc> devices_;
  bool initialised_ = false;
};

int backend_rank(std::string_view name) {
  static constexpr std::string_view order[] = {"cuda", "vulkan", "cpu"};
  for (size_t i = 0; i < std::size(order); ++i)
    if (order[i] == name) return static_cast<int>(i);
  return static_cast<int>(std::size(order));
}

std::vector<fs::path> split_path_list(const char* value) {
  std::vector<fs::path> out;
  if (!value) return out;
  std::stringstream in(value);
  std::string item;
  while (std::getline(in, item, ':'))
    if (!item.empty()) out.emplace_back(item);
  return out;
}

}  // namespace

bool Plugin::answers_to(std::string_view backend) const {
  if (backend == name()) return true;
  for (const auto& alias : aliases())
    if (alias == backend) return true;
  return false;
}

std::vector<std::string> Plugin::aliases() const {
  std::vector<std::string> out;
  if (const char* const* a = api().aliases)
    for (; *a; ++a) out.emplace_back(*a);
  return out;
}

fs::path installed_plugin_dir() {
  return APR_INSTALLED_PLUGIN_DIR;
}

fs::path executable_dir() {
  boost::dll::fs::error_code ec;
  auto p = boost::dll::program_location(ec);
  if (ec) return {};
  return fs::path(p.string()).parent_path();
}

std::unique_ptr<Plugin> load_plugin(const fs::path& file) {
  boost::dll::shared_library lib;
  boost::dll::fs::error_code ec;
  lib.load(boost::dll::fs::path(file.string()),
           boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec || !lib.is_loaded()) {
    const char* why = ::dlerror();  // more precise than the error_code Boost.DLL gives
    throw Error(std::string("cannot load: ") + (why ? why : ec.message()));
  }
  if (!lib.has(APR_PLUGIN_ENTRY_SYMBOL))
    throw Error("no entry symbol '" APR_PLUGIN_ENTRY_SYMBOL "' (not an apr plugin)");
  auto entry = lib.get<const apr_plugin_api*(uint32_t, uint32_t)>(APR_PLUGIN_ENTRY_SYMBOL);
  const apr_plugin_api* api = entry(APR_ABI_MAJOR, APR_ABI_MINOR);
  if (!api)
    throw Error("entry point returned no function table for ABI " + std::to_string(APR_ABI_MAJOR) +
                "." + std::to_string(APR_ABI_MINOR));
  auto plugin = std::make_unique<LoadedPlugin>(std::move(lib), api, file);
  plugin->negotiate_and_start();
  return plugin;
}

PluginHost::PluginHost(SearchOptions options) {
  std::vector<fs::path> dirs = options.plugin_dirs;
  if (options.use_environment)
    for (auto& d : split_path_list(std::getenv("APR_PLUGIN_PATH"))) dirs.push_back(d);
  if (options.use_install_dir) dirs.push_back(installed_plugin_dir());
  if (options.use_executable_dir) {
    const fs::path exe = executable_dir();
    if (!exe.empty()) {
      dirs.push_back(exe.parent_path() / APR_PLUGIN_SUBDIR);  // build or install tree
      dirs.push_back(exe);
    }
  }
  for (auto& d : dirs) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(d, ec);
    if (ec) canonical = d;
    if (std::find(search_path_.begin(), search_path_.end(), canonical) == search_path_.end())
      search_path_.push_back(canonical);
  }
  for (const auto& d : search_path_) load_directory(d);
}

PluginHost::~PluginHost() = default;

void PluginHost::load_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string fname = entry.path().filename().string();
    // Only files named like plugins are tried, so unrelated libraries cause no noise.
    if (fname.rfind(kPluginPrefix, 0) == 0 && entry.path().extension() == ".so")
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) load_file(f);
}

void PluginHost::load_file(const fs::path& file) {
  try {
    auto plugin = load_plugin(file);
    for (const auto& p : plugins_)
      if (p->name() == plugin->name())
        throw Error("backend '" + std::string(plugin->name()) + "' is already provided by " +
                    p->path().string());
    spdlog::debug("loaded plugin {} from {}", plugin->name(), file.string());
    plugins_.push_back(std::move(plugin));
  } catch (const std::exception& e) {
    spdlog::debug("refused {}: {}", file.string(), e.what());
    refusals_.push_back({file, e.what()});
  }
}

Plugin& PluginHost::select(std::string_view backend) const {
  if (backend == "auto") {
    // Probe scores rank real hardware above software fallbacks (a GPU plugin scores higher than
    // cpu, lavapipe lower), so the best usable backend is the highest score; the documented order
    // cuda, vulkan, cpu breaks ties.
    Plugin* best = nullptr;
    for (const auto& p : plugins_) {
      if (!best || p->score() > best->score() ||
          (p->score() == best->score() && backend_rank(p->name()) < backend_rank(best->name())))
        best = p.get();
    }
    if (best) return *best;
  } else {
    for (const auto& p : plugins_)
      if (p->answers_to(backend)) return *p;
  }
  std::string available;
  for (const auto& p : plugins_)
    available += (available.empty() ? "" : ", ") + std::string(p->name());
  if (available.empty()) available = "none (run `apr plugins` to see why)";
  throw Error("backend '" + std::string(backend) + "' is not available; available: " + available);
}

}  // namespace apr::host
