// SPDX-License-Identifier: MIT
// The CUDA plugin loads on any machine (its runtime is static and it never links libcuda) and
// tells the truth in probe(): score 0 with "no CUDA device: ..." without a GPU, positive with one.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <string>

#include <boost/dll/shared_library.hpp>

#include "common/plugin_under_test.hpp"
#include "cuda/cuda_gpu.hpp"

namespace {

// The plugin's table, loaded but not initialised: probe and the device list come before init.
const apr_plugin_api& plugin() {
  return apr_test::plugin().api();
}

}  // namespace

TEST_CASE("the cuda plugin exports a complete ABI 1.x table named cuda") {
  const apr_plugin_api& api = plugin();
  CHECK_NOTHROW(apr::check_table(api));  // version, size and every required member
  REQUIRE(api.name != nullptr);
  CHECK(std::string(api.name) == "cuda");
  CHECK(api.version != nullptr);
  CHECK(api.description != nullptr);
  REQUIRE(api.error_message() != nullptr);
  // ABI 1.3: the table holds the unary kernel (the host refuses gemma models without it).
  CHECK(api.abi_minor >= 3);
  REQUIRE(APR_STRUCT_HAS(&api, apr_plugin_api, unary));
  CHECK(api.unary != nullptr);
}

// The entry point itself, called with versions other than this host's: apr::PluginLibrary always
// asks for this host's ABI, so this one test loads the library on its own.
TEST_CASE("the cuda plugin refuses a host of another major version") {
  boost::dll::shared_library lib(
      APR_TEST_PLUGIN_PATH, boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now);
  auto entry = lib.get<const apr_plugin_api*(uint32_t, uint32_t)>(APR_PLUGIN_ENTRY_SYMBOL);
  CHECK(entry(2, 0) == nullptr);
  CHECK(entry(0, 9) == nullptr);
  CHECK(entry(1, 7) != nullptr);  // a newer 1.x host still reads the 1.0 table
}

TEST_CASE("cuda probe matches the presence of a GPU") {
  const apr_probe_result r = apr_test::plugin().probe();
  const std::string reason(r.reason, strnlen(r.reason, sizeof(r.reason)));
  INFO("probe reason: " << reason);
  REQUIRE(reason.size() < sizeof(r.reason));  // NUL-terminated
  CHECK(!reason.empty());
  if (cuda_test::gpu_expected()) {
    CHECK(r.score > 0);
    CHECK(plugin().device_count() > 0);
  } else {
    CHECK(r.score == 0u);
    CHECK(reason.rfind("no CUDA device", 0) == 0);
    CHECK(plugin().device_count() == 0u);
  }
}

TEST_CASE("cuda probe writes only inside the struct_size the host gives") {
  apr_probe_result r;
  std::memset(&r, 0x5a, sizeof(r));
  r.struct_size = offsetof(apr_probe_result, reason);  // a host that knows only `score`
  REQUIRE(plugin().probe(&r) == APR_OK);
  for (size_t i = 0; i < sizeof(r.reason); ++i) {
    INFO("reason byte " << i);
    REQUIRE(static_cast<unsigned char>(r.reason[i]) == 0x5a);
  }
  CHECK(plugin().probe(nullptr) != APR_OK);
}

TEST_CASE("without a GPU, opening a cuda device fails with a message instead of crashing") {
  if (cuda_test::gpu_expected()) return;  // covered by the kernel tests on a GPU machine
  const apr_plugin_api& api = plugin();
  apr_device* dev = reinterpret_cast<apr_device*>(&dev);  // must be overwritten or left alone
  apr_device_options options{};
  options.struct_size = sizeof(options);
  CHECK(api.device_open(0, &options, &dev) != APR_OK);
  CHECK(std::string(api.error_message()).find("no CUDA device") != std::string::npos);
  apr_device_info info{};
  info.struct_size = sizeof(info);
  CHECK(api.device_info(0, &info) != APR_OK);
}
