// SPDX-License-Identifier: MIT
// The plugin a backend's test program drives, through core/plugin_handle as the host drives it:
// apr::PluginLibrary loads the library and holds its table (checked with apr::check_table), this
// class owns the apr_host and the init/shutdown pair (the tests' one copy of that sequence), and
// apr::Device opens device 0. Loading happens on construction, init only when a device is first
// asked for, so tests of probe and of the device list see the plugin as a host's probe does.
// Every failed call throws (apr::Error from loading, apr::BackendError with the plugin's message
// from init and the device), which fails the calling Catch2 test.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "plugin_handle/device.hpp"
#include "plugin_handle/plugin_library.hpp"

namespace apr_test {

class PluginUnderTest {
 public:
  explicit PluginUnderTest(const std::filesystem::path& file)
      : lib_(file),
        abi_minor_(apr::check_table(lib_.api())),
        backend_(lib_.api().name ? lib_.api().name : file.filename().string()) {}
  // Closes the device before shutdown; the library unloads last.
  ~PluginUnderTest() { close(); }
  PluginUnderTest(const PluginUnderTest&) = delete;
  PluginUnderTest& operator=(const PluginUnderTest&) = delete;

  const apr_plugin_api& api() const { return lib_.api(); }
  // The minor version negotiated with this host (apr::check_table).
  uint32_t abi_minor() const { return abi_minor_; }

  apr_probe_result probe() const {
    auto result = apr::abi_struct<apr_probe_result>();
    fail_unless(api().probe(&result), "probe");
    return result;
  }

  // Calls init once, with an apr_host that stays valid until shutdown.
  void start() {
    if (initialised_) return;
    host_ = apr::abi_struct<apr_host>();
    host_.abi_major = APR_ABI_MAJOR;
    host_.abi_minor = abi_minor_;
    host_.host_version = "apr tests";
    fail_unless(api().init(&host_), "init");
    initialised_ = true;
  }

  // Closes the device and shuts the plugin down; the library stays loaded until destruction.
  void close() {
    device_.reset();
    if (initialised_) api().shutdown();
    initialised_ = false;
  }

  // Device 0 with the plugin's default thread count, opened after start() on first use.
  apr::Device& device() {
    if (!device_) {
      start();
      device_ = std::make_unique<apr::Device>(api(), abi_minor_, backend_, 0, 0);
    }
    return *device_;
  }

 private:
  void fail_unless(apr_status status, const char* what) const {
    if (status != APR_OK)
      throw apr::BackendError(backend_ + ": " + what + " failed (" + apr::status_name(status) +
                              "): " + api().error_message());
  }

  apr::PluginLibrary lib_;
  uint32_t abi_minor_;
  std::string backend_;
  apr_host host_{};
  bool initialised_ = false;
  std::unique_ptr<apr::Device> device_;
};

// The test program's plugin: APR_TEST_PLUGIN_PATH (set by its CMakeLists.txt), loaded on first
// use. plugin_under_test.cpp, compiled into the program, defines it and shuts the plugin down when
// the Catch2 run ends, before the process's exit handlers; the library stays loaded.
PluginUnderTest& plugin();

// A device buffer holding `data`.
inline apr::Buffer upload(apr::Device& device, const std::vector<float>& data) {
  apr::Buffer buffer = device.alloc(data.size() * sizeof(float));
  device.write(buffer, 0, data.data(), data.size() * sizeof(float));
  return buffer;
}

// The whole buffer as floats.
inline std::vector<float> download(apr::Device& device, const apr::Buffer& buffer) {
  std::vector<float> out(buffer.size() / sizeof(float));
  device.read(buffer, 0, out.data(), out.size() * sizeof(float));
  return out;
}

// A weight of n_rows x n_cols elements from raw GGUF blocks, copied by the plugin.
inline apr::Weight upload_weight(apr::Device& device, uint32_t type, uint64_t n_rows,
                                 uint64_t n_cols, const std::vector<uint8_t>& blocks) {
  auto desc = apr::abi_struct<apr_weight_desc>();
  desc.type = type;
  desc.n_cols = n_cols;
  desc.n_rows = n_rows;
  desc.data = blocks.data();
  desc.nbytes = blocks.size();
  desc.name = "test.weight";
  return device.create_weight(desc);
}

}  // namespace apr_test
