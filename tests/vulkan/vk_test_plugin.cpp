// SPDX-License-Identifier: MIT
#include "vk_test_plugin.hpp"

#include <dlfcn.h>

#include <random>
#include <stdexcept>

namespace vk_test {

const apr_plugin_api& plugin() {
  static const apr_plugin_api* api = [] {
    void* lib = dlopen(APR_VULKAN_PLUGIN_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!lib) throw std::runtime_error(std::string("dlopen failed: ") + dlerror());
    auto entry = reinterpret_cast<apr_plugin_entry_fn>(dlsym(lib, APR_PLUGIN_ENTRY_SYMBOL));
    if (!entry) throw std::runtime_error("the plugin has no apr_plugin_entry");
    const apr_plugin_api* table = entry(APR_ABI_MAJOR, APR_ABI_MINOR);
    if (!table) throw std::runtime_error("the plugin refused ABI 1.0");
    return table;
  }();
  return *api;
}

void check(apr_status status, const char* what) {
  if (status != APR_OK) {
    throw std::runtime_error(std::string(what) + " failed (" + std::to_string(status) +
                             "): " + plugin().error_message());
  }
}

apr_device* device() {
  static apr_device* dev = [] {
    static apr_host host{};  // the ABI wants it valid until shutdown
    host.struct_size = sizeof host;
    host.abi_major = APR_ABI_MAJOR;
    host.abi_minor = APR_ABI_MINOR;
    host.host_version = "vulkan-tests";
    check(plugin().init(&host), "init");
    apr_device_options options{};
    options.struct_size = sizeof options;
    apr_device* opened = nullptr;
    check(plugin().device_open(0, &options, &opened), "device_open");
    return opened;
  }();
  return dev;
}

Buffer::Buffer(const std::vector<float>& data) : Buffer(uint64_t(data.size())) {
  check(plugin().buffer_write(device(), buffer_, 0, data.data(), data.size() * 4), "buffer_write");
}

Buffer::Buffer(uint64_t n_floats) : n_floats_(n_floats) {
  check(plugin().buffer_alloc(device(), n_floats * 4, &buffer_), "buffer_alloc");
}

Buffer::~Buffer() {
  plugin().buffer_free(device(), buffer_);
}

std::vector<float> Buffer::read() const {
  std::vector<float> out(n_floats_);
  check(plugin().buffer_read(device(), buffer_, 0, out.data(), out.size() * 4), "buffer_read");
  return out;
}

Weight::Weight(apr_type type, uint64_t n_cols, uint64_t n_rows,
               const std::vector<uint8_t>& blocks) {
  apr_weight_desc desc{};
  desc.struct_size = sizeof desc;
  desc.type = type;
  desc.n_cols = n_cols;
  desc.n_rows = n_rows;
  desc.data = blocks.data();
  desc.nbytes = blocks.size();
  desc.name = "test.weight";
  check(plugin().weight_create(device(), &desc, &weight_), "weight_create");
}

Weight::~Weight() {
  plugin().weight_free(device(), weight_);
}

std::vector<float> random_floats(uint64_t n, uint64_t seed, float scale) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> out(n);
  for (auto& v : out) v = dist(rng);
  out[0] = scale * 0.5f;  // never all zero
  return out;
}

}  // namespace vk_test
