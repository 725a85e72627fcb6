// SPDX-License-Identifier: MIT
#include "discovery.hpp"

#include <string>

namespace apr_cuda {
namespace {

using apr_sdk::num;

std::string sm_name(const cudaDeviceProp& prop) {
  return "sm_" + num(prop.major) + num(prop.minor);
}

cudaDeviceProp properties(uint32_t index) {
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, static_cast<int>(index)), "cudaGetDeviceProperties");
  return prop;
}

// "12.4" from the runtime's and driver's 12040.
std::string cuda_version(int version) {
  return num(version / 1000) + "." + num(version % 1000 / 10);
}

}  // namespace

uint32_t device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    apr_sdk::invalid(std::string("no CUDA device: ") + cudaGetErrorString(err));
  }
  return static_cast<uint32_t>(n);
}

apr_sdk::ProbeAnswer probe() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    // On a machine without a driver this is "insufficient driver" (35), not "no device".
    return {0, std::string("no CUDA device: ") + cudaGetErrorString(err)};
  }
  if (count == 0) return {0, "no CUDA device: the driver reports none"};
  std::string found;
  int usable = 0;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    if (!found.empty()) found += ", ";
    found += std::string(prop.name) + " (" + sm_name(prop) + ")";
    if (prop.major >= kMinComputeMajor) ++usable;
  }
  if (usable == 0) return {0, "no usable CUDA device: " + found + "; this build needs sm_80+"};
  // Above the cpu plugin (10) and a Vulkan discrete GPU (100): on an NVIDIA GPU the native
  // backend is the better choice of the two that can drive it.
  return {200, num(usable) + " CUDA device(s): " + found};
}

apr_sdk::DeviceFacts device_facts(uint32_t index) {
  const cudaDeviceProp prop = properties(index);
  int driver = 0, runtime = 0;
  (void)cudaDriverGetVersion(&driver);
  (void)cudaRuntimeGetVersion(&runtime);
  const std::string description =
      "CUDA " + sm_name(prop) + ", " + num(prop.multiProcessorCount) + " SMs, driver " +
      cuda_version(driver) + ", runtime " + cuda_version(runtime) +
      (prop.major < kMinComputeMajor ? ", unsupported: this build needs sm_80 or newer" : "");
  return {uint32_t(prop.integrated ? APR_DEVICE_KIND_INTEGRATED_GPU : APR_DEVICE_KIND_DISCRETE_GPU),
          uint64_t(prop.totalGlobalMem), prop.name, description};
}

cudaDeviceProp usable_device(uint32_t index) {
  const cudaDeviceProp prop = properties(index);
  if (prop.major < kMinComputeMajor)
    apr_sdk::fail(APR_ERR_UNSUPPORTED, std::string(prop.name) + " is " + sm_name(prop) +
                                           "; this build of the cuda plugin needs sm_80 or newer");
  return prop;
}

}  // namespace apr_cuda
