// SPDX-License-Identifier: MIT
// Loads the Vulkan plugin once per test process and gives tests small helpers around it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apr/plugin.h"

namespace vk_test {

// The plugin's table; throws when the library or its entry point is missing.
const apr_plugin_api& plugin();

// Device 0 of the plugin, opened (after init) on first use; throws with the plugin's message
// when that fails.
apr_device* device();

// Throws std::runtime_error carrying the plugin's message unless status is APR_OK.
void check(apr_status status, const char* what);

// A device buffer holding data; freed by the destructor.
class Buffer {
 public:
  explicit Buffer(const std::vector<float>& data);
  explicit Buffer(uint64_t n_floats);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  apr_buffer* get() const { return buffer_; }
  std::vector<float> read() const;

 private:
  apr_buffer* buffer_ = nullptr;
  uint64_t n_floats_ = 0;
};

// A device weight holding raw GGUF blocks; freed by the destructor.
class Weight {
 public:
  Weight(apr_type type, uint64_t n_cols, uint64_t n_rows, const std::vector<uint8_t>& blocks);
  ~Weight();
  Weight(const Weight&) = delete;
  Weight& operator=(const Weight&) = delete;
  const apr_weight* get() const { return weight_; }

 private:
  apr_weight* weight_ = nullptr;
};

// n random values uniform in [-scale, scale], never all zero.
std::vector<float> random_floats(uint64_t n, uint64_t seed, float scale = 1.0f);

}  // namespace vk_test
