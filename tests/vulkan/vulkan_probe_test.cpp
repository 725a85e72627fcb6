// SPDX-License-Identifier: MIT
// The plugin's table, and what probe and the device list say with and without a Vulkan driver.
// Tests tagged [no-driver] run in a process whose VK_ICD_FILENAMES names a missing file; the
// others run on lavapipe (see CMakeLists.txt).
#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "common/plugin_under_test.hpp"

namespace {

// The plugin's table, loaded but not initialised: probe and the device list come before init.
const apr_plugin_api& plugin() {
  return apr_test::plugin().api();
}

std::string reason_of(const apr_probe_result& r) {
  return std::string(r.reason, strnlen(r.reason, sizeof r.reason));
}

apr_probe_result run_probe() {
  apr_probe_result r{};
  r.struct_size = sizeof r;
  r.score = 12345;
  REQUIRE(plugin().probe(&r) == APR_OK);
  return r;
}

}  // namespace

TEST_CASE("the vulkan plugin exports a complete ABI 1.0 table named vulkan, alias wgpu") {
  const apr_plugin_api& api = plugin();
  CHECK_NOTHROW(apr::check_table(api));  // version, size and every required member
  REQUIRE(api.name != nullptr);
  CHECK(std::string(api.name) == "vulkan");
  REQUIRE(api.aliases != nullptr);
  REQUIRE(api.aliases[0] != nullptr);
  CHECK(std::string(api.aliases[0]) == "wgpu");
  CHECK(api.aliases[1] == nullptr);
  REQUIRE(api.error_message() != nullptr);
}

TEST_CASE("without a driver, probe refuses with a clear reason and nothing crashes",
          "[no-driver]") {
  const apr_probe_result r = run_probe();
  const std::string reason = reason_of(r);
  INFO("probe reason: " << reason);
  CHECK(r.score == 0u);
  CHECK(reason.rfind("no Vulkan", 0) == 0);
  CHECK(plugin().device_count() == 0u);

  apr_device* dev = reinterpret_cast<apr_device*>(1);
  apr_device_options options{};
  options.struct_size = sizeof options;
  CHECK(plugin().device_open(0, &options, &dev) == APR_ERR_UNAVAILABLE);
  CHECK(dev == nullptr);
  CHECK(std::string(plugin().error_message()).find("no Vulkan") != std::string::npos);
  apr_device_info info{};
  info.struct_size = sizeof info;
  CHECK(plugin().device_info(0, &info) == APR_ERR_UNAVAILABLE);
  // Asking again gives the same answer rather than a stale or crashing state.
  CHECK(run_probe().score == 0u);
}

TEST_CASE("on lavapipe, probe accepts with a low score and lists a virtual device") {
  const apr_probe_result r = run_probe();
  INFO("probe reason: " << reason_of(r));
  CHECK(r.score > 0u);
  CHECK(r.score < 20u);  // a software device must not outrank a native CPU backend
  REQUIRE(plugin().device_count() >= 1u);
  apr_device_info info{};
  info.struct_size = sizeof info;
  REQUIRE(plugin().device_info(0, &info) == APR_OK);
  const std::string name(info.name);
  INFO("device: " << name << " / " << info.description);
  CHECK(name.find("llvmpipe") != std::string::npos);
  CHECK(info.kind == uint32_t(APR_DEVICE_KIND_VIRTUAL));
  CHECK(info.memory_bytes > 0u);
  CHECK(std::string(info.description).find("Vulkan 1.") == 0);
  CHECK(plugin().device_info(plugin().device_count(), &info) == APR_ERR_INVALID_ARGUMENT);
}

TEST_CASE("probe writes nothing beyond the struct_size the host gives") {
  struct {
    apr_probe_result head;
    unsigned char guard[64];
  } padded;
  std::memset(&padded, 0xAB, sizeof padded);
  padded.head.struct_size = offsetof(apr_probe_result, reason);  // score only
  REQUIRE(plugin().probe(&padded.head) == APR_OK);
  const auto* reason = reinterpret_cast<const unsigned char*>(padded.head.reason);
  for (size_t i = 0; i < sizeof padded.head.reason; ++i) REQUIRE(reason[i] == 0xAB);
}
