// SPDX-License-Identifier: MIT
// Loads the CUDA plugin once per test process and opens its first device when one is usable.
#pragma once

#include <string>

#include "apr/plugin.h"

namespace cuda_test {

// The plugin's table; fails the calling test when the library or its entry point is missing.
const apr_plugin_api& plugin();

// Probe result of the plugin on this machine.
apr_probe_result probe();

// Whether this machine is expected to have a working NVIDIA GPU: APR_EXPECT_CUDA_GPU=1/0 when
// set, else whether the NVIDIA driver's device node exists.
bool gpu_expected();

// Device 0, opened on first use after init; null when probe says the plugin is unusable.
apr_device* device();

// Throws std::runtime_error with the plugin's message unless status is APR_OK.
void check(apr_status status, const char* what);

}  // namespace cuda_test
