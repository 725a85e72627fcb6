// SPDX-License-Identifier: MIT
// The CUDA tests' backend-specific rules: whether this machine is expected to have a GPU, and the
// GPU tests' device (a skip where there is none) and random data. The plugin itself is loaded and
// driven through tests/common/plugin_under_test.hpp.
#pragma once

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/plugin_under_test.hpp"
#include "common/test_skip.hpp"

namespace cuda_test {

// APR_EXPECT_CUDA_GPU=1/0 when set, else whether the NVIDIA driver's device node exists. Where a
// GPU is expected, a plugin that finds none is a failure rather than a skip.
inline bool gpu_expected() {
  if (const char* env = std::getenv("APR_EXPECT_CUDA_GPU"); env && *env)
    return std::string(env) != "0";
  return std::filesystem::exists("/dev/nvidiactl");
}

// Device 0 of the CUDA plugin, or nullptr after recording a skip (apr_test::skip) when probe finds
// no usable GPU; a failure instead where a GPU is expected.
inline apr::Device* gpu() {
  const apr_probe_result r = apr_test::plugin().probe();
  if (r.score == 0) {
    const std::string reason(r.reason, strnlen(r.reason, sizeof r.reason));
    if (gpu_expected()) FAIL("a GPU is expected but probe says: " << reason);
    apr_test::skip(reason.empty() ? "the CUDA plugin's probe finds no usable GPU" : reason);
    return nullptr;
  }
  return &apr_test::plugin().device();
}

inline std::vector<float> random_floats(size_t n, std::mt19937_64& rng, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Fills memory a kernel must not write.
constexpr float kSentinel = -12345.5f;

}  // namespace cuda_test
