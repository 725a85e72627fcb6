// SPDX-License-Identifier: MIT
#include "cuda/plugin_handle.hpp"

#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>

namespace cuda_test {
namespace {

struct Loaded {
  boost::dll::shared_library library;
  const apr_plugin_api* api = nullptr;
  bool initialised = false;
  apr_device* device = nullptr;
  apr_host host{};

  ~Loaded() {
    if (device) api->device_close(device);
    if (initialised) api->shutdown();
  }
};

Loaded& loaded() {
  static std::unique_ptr<Loaded> instance = [] {
    auto l = std::make_unique<Loaded>();
    l->library.load(APR_CUDA_PLUGIN_PATH,
                    boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now);
    auto entry = l->library.get<const apr_plugin_api*(uint32_t, uint32_t)>(APR_PLUGIN_ENTRY_SYMBOL);
    l->api = entry(APR_ABI_MAJOR, APR_ABI_MINOR);
    if (!l->api) throw std::runtime_error("apr_plugin_entry returned NULL for ABI 1.0");
    return l;
  }();
  return *instance;
}

}  // namespace

const apr_plugin_api& plugin() {
  return *loaded().api;
}

apr_probe_result probe() {
  apr_probe_result r{};
  r.struct_size = sizeof(r);
  check(plugin().probe(&r), "probe");
  return r;
}

bool gpu_expected() {
  if (const char* env = std::getenv("APR_EXPECT_CUDA_GPU"); env && *env) {
    return std::string(env) != "0";
  }
  return std::filesystem::exists("/dev/nvidiactl");
}

apr_device* device() {
  Loaded& l = loaded();
  if (l.device) return l.device;
  if (probe().score == 0) return nullptr;
  if (!l.initialised) {
    l.host.struct_size = sizeof(l.host);
    l.host.abi_major = APR_ABI_MAJOR;
    l.host.abi_minor = APR_ABI_MINOR;
    l.host.host_version = "cuda_plugin_tests";
    check(l.api->init(&l.host), "init");
    l.initialised = true;
  }
  apr_device_options options{};
  options.struct_size = sizeof(options);
  check(l.api->device_open(0, &options, &l.device), "device_open");
  return l.device;
}

void check(apr_status status, const char* what) {
  if (status != APR_OK) {
    throw std::runtime_error(std::string(what) + " failed (" + std::to_string(status) +
                             "): " + plugin().error_message());
  }
}

}  // namespace cuda_test
