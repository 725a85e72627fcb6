// SPDX-License-Identifier: MIT
// The cpu backend as the kit sees it: identity, probe and the one device. The kit
// (apr/plugin_sdk.hpp) builds the function table, checks every argument and maps failures to
// statuses; the device's methods are in device_methods.cpp, the kernels in the other files.
#include <cstdlib>
#include <string>
#include <thread>

#include "device.hpp"
#include "fault_injection.hpp"
#include "status.hpp"
#include "system_info.hpp"
#include "weight_formats.hpp"

#ifndef APR_CPU_PLUGIN_NAME
#define APR_CPU_PLUGIN_NAME "cpu"
#endif
#ifndef APR_CPU_PLUGIN_VERSION
#define APR_CPU_PLUGIN_VERSION "0.1.0"
#endif

namespace apr_cpu {
namespace {

const IsaKernels& kernels() {
  return select_isa_kernels(std::getenv("APR_CPU_ISA"));
}

std::string hardware_threads() {
  return num(std::thread::hardware_concurrency()) + " hardware threads";
}

struct CpuBackend {
  static constexpr const char* kName = APR_CPU_PLUGIN_NAME;
  static constexpr const char* kVersion = APR_CPU_PLUGIN_VERSION;
  static constexpr const char* kDescription =
      "CPU backend: 13 ggml weight types, integer kernels on repacked weights";
  static constexpr const char* const* kAliases = nullptr;

  static apr_sdk::ProbeAnswer probe() {
    return {10, hardware_threads() + ", " + kernels().name + " kernels"};
  }
  static uint32_t device_count() { return 1; }
  static apr_sdk::DeviceFacts device_info(uint32_t) {
    const IsaKernels& k = kernels();
    return {APR_DEVICE_KIND_CPU, physical_memory_bytes(), cpu_model_name(),
            std::string(k.name) + " kernels, " +
                (k.packed_gemm_q16 ? "16-bit activations on quantized weights (default)"
                                   : "f32 activations") +
                ", " + hardware_threads()};
  }
  static apr_sdk::DeviceLimits device_caps(uint32_t) {
    return {APR_FEATURE_ROPE_FREQ_FACTORS | APR_FEATURE_FUSED_TRACE | APR_FEATURE_NORM_GROUPS |
                APR_FEATURE_ATTN_WINDOW | APR_FEATURE_ATTN_SOFTCAP | APR_FEATURE_GELU,
            uint64_t{1} << 48};
  }
  static bool supports_weight_type(apr_type type) { return find_weight_format(type) != nullptr; }
  static std::unique_ptr<apr_device> device_open(uint32_t, const apr_sdk::DeviceOptions& options) {
    if (options.n_threads > 1024) invalid("n_threads " + num(options.n_threads) + " is absurd");
    fault::configure_from_environment();
    const IsaKernels& k = kernels();
    auto d = std::make_unique<apr_device>(options.n_threads, k);
    fault::device_opened(*d);
    apr_sdk::log(APR_LOG_INFO,
                 std::string("cpu: ") + num(d->pool.size()) + " threads, " + k.name + " kernels");
    return d;
  }
};

}  // namespace
}  // namespace apr_cpu

APR_SDK_PLUGIN_ENTRY(apr_cpu::CpuBackend)
