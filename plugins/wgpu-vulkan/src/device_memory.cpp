// SPDX-License-Identifier: MIT
// A device's buffers and weights: device-local Vulkan buffers filled through staging copies that
// are recorded with the kernels, so a write is ordered with the kernels around it.
#include <string>

#include "plugin_objects.hpp"

std::unique_ptr<apr_buffer> apr_device::buffer_alloc(uint64_t nbytes) {
  return std::make_unique<apr_buffer>(vulkan, nbytes);
}

void apr_device::buffer_write(apr_buffer& b, uint64_t offset, const void* src, uint64_t nbytes) {
  if (nbytes == 0) return;
  // This plugin's own rule, not the ABI's: writes cover whole 32-bit words.
  apr_vk::require(offset % 4 == 0 && nbytes % 4 == 0, APR_ERR_INVALID_ARGUMENT,
                  "offset and size must be multiples of 4");
  vulkan.upload(b.memory, offset, src, nbytes);
}

void apr_device::buffer_read(const apr_buffer& b, uint64_t offset, void* dst, uint64_t nbytes) {
  const vk::BufferCopy region(offset, 0, nbytes);
  vulkan.download(b.memory, {&region, nbytes ? 1u : 0u}, dst, nbytes);
}

std::unique_ptr<apr_weight> apr_device::weight_create(const apr_sdk::WeightSpec& spec) {
  // The shaders address a weight row with 32-bit byte offsets.
  apr_vk::require(spec.row_bytes < (1u << 30), APR_ERR_UNSUPPORTED,
                  "tensor '" + spec.name + "': rows of more than 1 GiB are not supported");
  const uint64_t nbytes = spec.n_rows * spec.row_bytes;
  auto weight = std::make_unique<apr_weight>(vulkan, nbytes);
  vulkan.upload(weight->memory, 0, spec.data, nbytes);
  return weight;
}
