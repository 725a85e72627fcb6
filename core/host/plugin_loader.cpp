// SPDX-License-Identifier: MIT
#include "host/plugin_loader.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/error.hpp"

namespace fs = std::filesystem;

namespace apr::host {

namespace {

void host_log(void*, int32_t level, const char* message) {
  if (!message) return;
  const std::string m = sanitized_message(message);
  switch (level) {
    case APR_LOG_DEBUG:
      spdlog::debug("plugin: {}", m);
      break;
    case APR_LOG_INFO:
      spdlog::info("plugin: {}", m);
      break;
    case APR_LOG_WARN:
      spdlog::warn("plugin: {}", m);
      break;
    default:
      spdlog::error("plugin: {}", m);
      break;
  }
}

std::string plugin_error(const apr_plugin_api& t) {
  return sanitized_message(t.error_message());
}

// An output struct with guard bytes behind it, so a plugin that writes past the struct_size the
// host gave it is caught instead of silently corrupting the host's memory.
template <typename T>
struct Guarded {
  static constexpr unsigned char kGuard = 0xA5;
  T value{};
  unsigned char guard[64];
  Guarded() {
    value.struct_size = sizeof(T);
    std::memset(guard, kGuard, sizeof guard);
  }
  bool overrun() const {
    return std::any_of(std::begin(guard), std::end(guard),
                       [](unsigned char c) { return c != kGuard; });
  }
};

void read_identity(const apr_plugin_api& t, PluginInfo& info) {
  info.name = bounded_string(t.name, kMaxNameBytes, "backend name");
  check_backend_name(info.name, "backend name");
  info.version = t.version ? bounded_string(t.version, kMaxVersionBytes, "version string") : "";
  check_text(info.version, kMaxVersionBytes, true, "version string");
  info.description =
      t.description ? bounded_string(t.description, kMaxDescriptionBytes, "description") : "";
  check_text(info.description, kMaxDescriptionBytes, false, "description");
  info.aliases.clear();
  if (const char* const* a = t.aliases) {
    size_t i = 0;
    for (; i <= kMaxAliases && a[i]; ++i) {
      if (i == kMaxAliases)
        throw Error("alias list has no NULL terminator within " + std::to_string(kMaxAliases) +
                    " entries");
      std::string alias = bounded_string(a[i], kMaxNameBytes, "alias " + std::to_string(i));
      check_backend_name(alias, "alias");
      info.aliases.push_back(std::move(alias));
    }
  }
}

}  // namespace

LoadedLibrary::LoadedLibrary() = default;

LoadedLibrary::~LoadedLibrary() {
  close();
}

void LoadedLibrary::close(const PhaseFn& phase) {
  if (initialised_) {
    if (phase) phase("shutdown");
    initialised_ = false;
    api_->shutdown();
  }
  if (lib_) {
    if (phase) phase("unload");
    lib_.reset();
  }
}

std::unique_ptr<LoadedLibrary> LoadedLibrary::load(const fs::path& file, const PhaseFn& phase) {
  std::unique_ptr<LoadedLibrary> self(new LoadedLibrary());
  const auto step = [&](const char* name) {
    if (phase) phase(name);
  };
  try {
    self->lib_ = std::make_unique<PluginLibrary>(file, step);
  } catch (const Error& e) {
    throw Error(sanitized_message(e.what()));  // the loader's text may hold anything
  }
  self->api_ = &self->lib_->api();
  self->start(step);
  return self;
}

void LoadedLibrary::start(const PhaseFn& step) {
  const apr_plugin_api& t = *api_;
  step("table");
  info_.abi_minor = check_table(t);
  read_identity(t, info_);

  step("probe");
  Guarded<apr_probe_result> probe;
  if (t.probe(&probe.value) != APR_OK) throw Error("probe failed: " + plugin_error(t));
  if (probe.overrun()) throw Error("probe wrote past the end of apr_probe_result");
  info_.score = probe.value.score;
  info_.probe_message = array_string(probe.value.reason, sizeof probe.value.reason, "probe reason");
  check_text(info_.probe_message, sizeof probe.value.reason, false, "probe reason");
  if (info_.score == 0)
    throw Error("not usable on this machine: " + (info_.probe_message.empty()
                                                      ? std::string("probe gave no reason")
                                                      : info_.probe_message));

  step("init");
  host_.struct_size = sizeof host_;
  host_.abi_major = APR_ABI_MAJOR;
  host_.abi_minor = info_.abi_minor;
  host_.host_version = "apr " APR_VERSION_STRING;
  host_.user_data = nullptr;
  host_.log = host_log;
  if (t.init(&host_) != APR_OK) throw Error("init failed: " + plugin_error(t));
  initialised_ = true;

  step("device_count");
  const uint32_t n = t.device_count();
  if (n == 0) throw Error("plugin reports no devices");
  if (n > kMaxDevices)
    throw Error("device_count returned " + std::to_string(n) + ", more than the " +
                std::to_string(kMaxDevices) + " devices a host accepts");
  step("device_info");
  info_.devices.clear();
  for (uint32_t i = 0; i < n; ++i) {
    const std::string what = "device_info(" + std::to_string(i) + ")";
    Guarded<apr_device_info> info;
    if (t.device_info(i, &info.value) != APR_OK) throw Error(what + " failed: " + plugin_error(t));
    if (info.overrun()) throw Error(what + " wrote past the end of apr_device_info");
    DeviceDesc d;
    d.index = i;
    d.kind = info.value.kind;
    d.memory_bytes = info.value.memory_bytes;
    d.name = array_string(info.value.name, sizeof info.value.name, what + " name");
    check_text(d.name, sizeof info.value.name, false, what + " name");
    d.description =
        array_string(info.value.description, sizeof info.value.description, what + " description");
    check_text(d.description, sizeof info.value.description, false, what + " description");
    info_.devices.push_back(std::move(d));
  }

  info_.has_unary = info_.abi_minor >= 3 && APR_STRUCT_HAS(&t, apr_plugin_api, unary) && t.unary;
  if (info_.abi_minor >= 2 && APR_STRUCT_HAS(&t, apr_plugin_api, device_caps) && t.device_caps) {
    step("device_caps");
    info_.caps_probed = true;
    for (DeviceDesc& d : info_.devices) {
      Guarded<apr_device_caps> caps;
      if (t.device_caps(d.index, &caps.value) != APR_OK) continue;  // asked again when used
      if (caps.overrun())
        throw Error("device_caps(" + std::to_string(d.index) +
                    ") wrote past the end of apr_device_caps");
      d.has_caps = true;
      d.caps = caps.value;
      d.caps.struct_size = sizeof d.caps;
    }
  }
}

}  // namespace apr::host
