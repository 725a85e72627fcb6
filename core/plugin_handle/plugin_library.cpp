// SPDX-License-Identifier: MIT
#include "plugin_handle/plugin_library.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <string>
#include <utility>

#include "common/error.hpp"

namespace apr {

struct PluginLibrary::Library {
  boost::dll::shared_library lib;
};

PluginLibrary::PluginLibrary(const std::filesystem::path& file, const PhaseFn& phase)
    : lib_(std::make_unique<Library>()), path_(file) {
  const auto step = [&](const char* name) {
    if (phase) phase(name);
  };
  step("load");
  boost::dll::fs::error_code ec;
  ::dlerror();
  lib_->lib.load(boost::dll::fs::path(file.string()),
                 boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec || !lib_->lib.is_loaded()) {
    const char* why = ::dlerror();  // more precise than the error_code Boost.DLL gives
    throw Error(std::string("cannot load: ") + (why ? why : ec.message()));
  }
  step("entry");
  if (!lib_->lib.has(APR_PLUGIN_ENTRY_SYMBOL))
    throw Error("no entry symbol '" APR_PLUGIN_ENTRY_SYMBOL "' (not an apr plugin)");
  auto entry = lib_->lib.get<const apr_plugin_api*(uint32_t, uint32_t)>(APR_PLUGIN_ENTRY_SYMBOL);
  api_ = entry(APR_ABI_MAJOR, APR_ABI_MINOR);
  if (!api_)
    throw Error("entry point returned no function table for ABI " + std::to_string(APR_ABI_MAJOR) +
                "." + std::to_string(APR_ABI_MINOR));
}

PluginLibrary::~PluginLibrary() {
  unload();
}

void PluginLibrary::unload() {
  api_ = nullptr;
  if (lib_ && lib_->lib.is_loaded()) lib_->lib.unload();
}

namespace {

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

}  // namespace

uint32_t check_table(const apr_plugin_api& t) {
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
  if (const char* missing = first_missing_member(t))
    throw Error(std::string("function table member '") + missing + "' is NULL");
  return std::min<uint32_t>(t.abi_minor, APR_ABI_MINOR);
}

}  // namespace apr
