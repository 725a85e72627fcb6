// SPDX-License-Identifier: MIT
// Finding CUDA devices: how many the runtime sees, the probe's answer, what each device is, and
// the compute-capability rule of this build.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "cuda_device.hpp"

#include <apr/plugin_sdk.hpp>  // after the handle types (see cuda_device.hpp)

namespace apr_cuda {

// Compute capability this build carries code for (see CMAKE_CUDA_ARCHITECTURES).
constexpr int kMinComputeMajor = 8;

// Devices the CUDA runtime sees. Throws "no CUDA device: <why>" when the runtime cannot count
// them (no driver, or a driver without devices): the kit's device_count entry reads that as 0,
// and device_info/device_caps/device_open report the reason instead of a bare "index out of range".
uint32_t device_count();

// Score 200 when a device of sm_80 or newer is present, else 0 with the reason.
apr_sdk::ProbeAnswer probe();

apr_sdk::DeviceFacts device_facts(uint32_t index);

// The properties of device `index`; APR_ERR_UNSUPPORTED when it is older than this build's code.
cudaDeviceProp usable_device(uint32_t index);

}  // namespace apr_cuda
