// SPDX-License-Identifier: MIT
// One open Vulkan device: memory, the compute pipelines, and batched command recording.
//
// Kernels and copies are recorded into one command buffer, each behind a full
// compute/transfer barrier, and submitted only when the host must see results (reads, trace
// emission, synchronize) or when the batch grows large. Staging memory and descriptor sets used
// by a batch live until that batch has finished.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "spirv_table.hpp"
#include "vulkan_hpp.hpp"
#include "vulkan_instance.hpp"

namespace apr_vk {

struct DeviceBuffer {
  vk::Buffer buffer;
  vk::DeviceMemory memory;
  uint64_t size = 0;       // bytes of the Vulkan buffer (the request rounded up)
  void* mapped = nullptr;  // host-visible buffers only
};

// A storage-buffer descriptor for a byte range, widened to the device's offset alignment;
// lead_bytes locates the first requested byte inside the bound range, word_offset the first
// requested float (activations are 4-byte aligned; weight rows need not be).
struct Binding {
  vk::Buffer buffer;
  uint64_t offset = 0;
  uint64_t range = 0;
  uint32_t lead_bytes = 0;
  uint32_t word_offset = 0;
};

class Device {
 public:
  explicit Device(const PhysicalDeviceEntry& entry);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const PhysicalDeviceEntry& physical() const { return physical_; }
  const vk::PhysicalDeviceLimits& limits() const { return physical_.properties.limits; }

  DeviceBuffer create_device_buffer(uint64_t nbytes);
  // Waits for pending work that might use the buffer, then frees it.
  void destroy_buffer(DeviceBuffer& buffer);
  // destroy_buffer for destructors: when the pending work fails to finish, the buffer is left
  // allocated (until the device closes) rather than freed under a batch that may still use it.
  void release_buffer(DeviceBuffer& buffer) noexcept;

  // Records a staged upload; src is copied before this returns.
  void upload(const DeviceBuffer& dst, uint64_t offset, const void* src, uint64_t nbytes);
  // A host-visible buffer holding a copy of data, readable by shaders until the next flush.
  const DeviceBuffer& transient_input(const void* data, uint64_t nbytes);
  void copy(const DeviceBuffer& src, const DeviceBuffer& dst,
            std::span<const vk::BufferCopy> regions);
  // Copies the regions (dstOffset relative to dst) to host memory, waiting for all earlier work.
  void download(const DeviceBuffer& src, std::span<const vk::BufferCopy> regions, void* dst,
                uint64_t dst_bytes);

  Binding bind(const DeviceBuffer& buffer, uint64_t offset, uint64_t nbytes) const;
  // For a binding the kernel does not touch in this call.
  Binding unused_binding() const { return bind(dummy_, 0, 4); }

  // Records one kernel. Bindings fill binding slots 0.. in order.
  void dispatch(Kernel kernel, apr_type weight_type, std::span<const Binding> bindings,
                const void* push, uint32_t push_bytes, std::array<uint32_t, 3> groups);
  // Splits n_groups workgroups over the x and y grid dimensions.
  std::array<uint32_t, 3> grid_1d(uint64_t n_groups) const;

  // Submits everything recorded and waits for it.
  void flush();

  // Device scratch for traced intermediates; valid until the next call to it.
  const DeviceBuffer& trace_scratch(uint64_t nbytes);

 private:
  void teardown() noexcept;
  DeviceBuffer create_buffer(uint64_t nbytes, vk::MemoryPropertyFlags required,
                             vk::MemoryPropertyFlags preferred);
  void free_buffer(DeviceBuffer& buffer);
  uint32_t memory_type(uint32_t type_bits, vk::MemoryPropertyFlags required,
                       vk::MemoryPropertyFlags preferred) const;
  vk::CommandBuffer begin_command();
  void end_command();
  vk::Pipeline pipeline(Kernel kernel, apr_type weight_type);
  vk::DescriptorSet allocate_descriptor_set();
  // A host-visible staging buffer that lives until the current batch has completed.
  DeviceBuffer& new_transient(uint64_t nbytes);

  PhysicalDeviceEntry physical_;
  vk::Device device_;
  vk::Queue queue_;
  vk::CommandPool command_pool_;
  vk::CommandBuffer command_buffer_;
  vk::Fence fence_;
  vk::DescriptorSetLayout set_layout_;
  vk::PipelineLayout pipeline_layout_;
  std::map<std::pair<int, apr_type>, vk::Pipeline> pipelines_;
  std::vector<vk::DescriptorPool> descriptor_pools_;
  size_t pool_in_use_ = 0;
  uint32_t sets_in_pool_ = 0;
  DeviceBuffer dummy_;
  DeviceBuffer scratch_;

  bool recording_ = false;
  uint32_t recorded_commands_ = 0;
  std::deque<DeviceBuffer> transients_;  // a deque keeps references stable
  std::vector<DeviceBuffer> spare_staging_;
  uint64_t transient_bytes_ = 0;
};

// A device-local buffer that frees itself: the memory of the plugin's buffers and weights.
class ScopedBuffer {
 public:
  ScopedBuffer(Device& device, uint64_t nbytes)
      : device_(device), buffer_(device.create_device_buffer(nbytes)) {}
  ~ScopedBuffer() { device_.release_buffer(buffer_); }
  ScopedBuffer(const ScopedBuffer&) = delete;
  ScopedBuffer& operator=(const ScopedBuffer&) = delete;

  // Lets it be passed wherever Device takes a DeviceBuffer.
  operator const DeviceBuffer&() const { return buffer_; }

 private:
  Device& device_;
  DeviceBuffer buffer_;
};

}  // namespace apr_vk
