// SPDX-License-Identifier: MIT
// The CUDA tests' one backend-specific rule: whether this machine is expected to have a GPU.
// The plugin itself is loaded and driven through tests/common/plugin_under_test.hpp.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace cuda_test {

// APR_EXPECT_CUDA_GPU=1/0 when set, else whether the NVIDIA driver's device node exists. Where a
// GPU is expected, a plugin that finds none is a failure rather than a skip.
inline bool gpu_expected() {
  if (const char* env = std::getenv("APR_EXPECT_CUDA_GPU"); env && *env)
    return std::string(env) != "0";
  return std::filesystem::exists("/dev/nvidiactl");
}

}  // namespace cuda_test
