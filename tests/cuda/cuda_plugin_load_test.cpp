// SPDX-License-Identifier: MIT
// The CUDA plugin loads on any machine (its runtime is static and it never links libcuda) and
// tells the truth in probe(): score 0 with "no CUDA device: ..." without a GPU, positive with one.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <string>

#include <boost/dll/shared_library.hpp>

#include "cuda/plugin_handle.hpp"

using cuda_test::plugin;

TEST_CASE("the cuda plugin exports a complete ABI 1.x table named cuda") {
  const apr_plugin_api& api = plugin();
  CHECK(api.abi_major == 1u);
  CHECK(api.struct_size >= APR_PLUGIN_API_SIZE_V1_0);
  REQUIRE(api.name != nullptr);
  CHECK(std::string(api.name) == "cuda");
  CHECK(api.version != nullptr);
  CHECK(api.description != nullptr);
  // Every member of ABI 1.0 is required.
  const void* members[] = {reinterpret_cast<const void*>(api.init),
                           reinterpret_cast<const void*>(api.shutdown),
                           reinterpret_cast<const void*>(api.probe),
                           reinterpret_cast<const void*>(api.error_message),
                           reinterpret_cast<const void*>(api.device_count),
                           reinterpret_cast<const void*>(api.device_info),
                           reinterpret_cast<const void*>(api.device_open),
                           reinterpret_cast<const void*>(api.device_close),
                           reinterpret_cast<const void*>(api.set_trace_sink),
                           reinterpret_cast<const void*>(api.buffer_alloc),
                           reinterpret_cast<const void*>(api.buffer_free),
                           reinterpret_cast<const void*>(api.buffer_write),
                           reinterpret_cast<const void*>(api.buffer_read),
                           reinterpret_cast<const void*>(api.synchronize),
                           reinterpret_cast<const void*>(api.weight_create),
                           reinterpret_cast<const void*>(api.weight_free),
                           reinterpret_cast<const void*>(api.embed),
                           reinterpret_cast<const void*>(api.rms_norm),
                           reinterpret_cast<const void*>(api.matmul),
                           reinterpret_cast<const void*>(api.add),
                           reinterpret_cast<const void*>(api.rope),
                           reinterpret_cast<const void*>(api.kv_store),
                           reinterpret_cast<const void*>(api.attention),
                           reinterpret_cast<const void*>(api.swiglu),
                           reinterpret_cast<const void*>(api.trace_emit)};
  for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); ++i) {
    INFO("member " << i);
    CHECK(members[i] != nullptr);
  }
  REQUIRE(api.error_message() != nullptr);
}

TEST_CASE("the cuda plugin refuses a host of another major version") {
  boost::dll::shared_library lib(
      APR_CUDA_PLUGIN_PATH, boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now);
  auto entry = lib.get<const apr_plugin_api*(uint32_t, uint32_t)>(APR_PLUGIN_ENTRY_SYMBOL);
  CHECK(entry(2, 0) == nullptr);
  CHECK(entry(0, 9) == nullptr);
  CHECK(entry(1, 7) != nullptr);  // a newer 1.x host still reads the 1.0 table
}

TEST_CASE("cuda probe matches the presence of a GPU") {
  const apr_probe_result r = cuda_test::probe();
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
