// SPDX-License-Identifier: MIT
// The cuda backend as the kit sees it: its identity and its devices. The kit (apr/plugin_sdk.hpp)
// builds the function table, checks every argument and handle, owns the trace sink and turns
// failures into statuses and messages; devices, memory and kernels are in cuda_device.cpp and
// kernel_calls.cpp, device discovery in discovery.cpp.
#include <memory>
#include <string>

#include "cuda_device.hpp"
#include "discovery.hpp"

#include <apr/plugin_sdk.hpp>  // after the handle types (see cuda_device.hpp)

namespace apr_cuda {
namespace {

struct CudaBackend {
  static constexpr const char* kName = "cuda";
  static constexpr const char* kVersion = "0.1.0";
  static constexpr const char* kDescription =
      "NVIDIA GPUs through the CUDA runtime (statically linked; needs only the driver)";
  static constexpr const char* const* kAliases = nullptr;

  static apr_sdk::ProbeAnswer probe() { return apr_cuda::probe(); }
  static uint32_t device_count() { return apr_cuda::device_count(); }
  static apr_sdk::DeviceFacts device_info(uint32_t index) { return device_facts(index); }
  static apr_sdk::DeviceLimits device_caps(uint32_t) {
    return {APR_FEATURE_ROPE_FREQ_FACTORS | APR_FEATURE_FUSED_TRACE | APR_FEATURE_NORM_GROUPS |
                APR_FEATURE_ATTN_WINDOW | APR_FEATURE_ATTN_SOFTCAP | APR_FEATURE_GELU,
            0};
  }
  static bool supports_weight_type(apr_type type) { return weight_type_supported(type); }

  // n_threads is ignored: the host-side work here is a thin launch layer.
  static std::unique_ptr<apr_device> device_open(uint32_t index, const apr_sdk::DeviceOptions&) {
    const cudaDeviceProp prop = usable_device(index);
    auto device = std::make_unique<apr_device>(static_cast<int>(index));
    apr_sdk::log(APR_LOG_INFO,
                 "cuda: opened device " + apr_sdk::num(index) + " (" + prop.name + ")");
    return device;
  }
};

}  // namespace
}  // namespace apr_cuda

APR_SDK_PLUGIN_ENTRY(apr_cuda::CudaBackend)
