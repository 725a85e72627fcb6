// SPDX-License-Identifier: MIT
#include "vulkan_device.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "plugin_error.hpp"

namespace apr_vk {
namespace {

constexpr uint32_t kBindingSlots = 5;
constexpr uint32_t kPushConstantBytes = 128;
constexpr uint32_t kSetsPerPool = 512;
// A batch is submitted early once it holds this much, so staging memory and the latency of the
// first result stay bounded.
constexpr uint32_t kMaxCommandsPerBatch = 1024;
constexpr uint64_t kMaxTransientBytesPerBatch = 64ull << 20;
constexpr size_t kMaxTransientsPerBatch = 256;
constexpr uint64_t kUploadChunkBytes = 32ull << 20;
constexpr uint64_t kSpareStagingBytes = 1ull << 20;
constexpr size_t kMaxSpareStaging = 32;
constexpr uint64_t kFenceTimeoutNs = 300ull * 1000 * 1000 * 1000;

uint64_t round_up(uint64_t value, uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

}  // namespace

Device::Device(const PhysicalDeviceEntry& entry) : physical_(entry) {
  const float priority = 1.0f;
  vk::DeviceQueueCreateInfo queue_info({}, physical_.compute_queue_family, 1, &priority);
  device_ = physical_.handle.createDevice(vk::DeviceCreateInfo({}, queue_info));
  try {
    queue_ = device_.getQueue(physical_.compute_queue_family, 0);
    command_pool_ = device_.createCommandPool(vk::CommandPoolCreateInfo(
        vk::CommandPoolCreateFlagBits::eTransient, physical_.compute_queue_family));
    command_buffer_ = device_
                          .allocateCommandBuffers(vk::CommandBufferAllocateInfo(
                              command_pool_, vk::CommandBufferLevel::ePrimary, 1))
                          .front();
    fence_ = device_.createFence({});

    std::array<vk::DescriptorSetLayoutBinding, kBindingSlots> slots;
    for (uint32_t i = 0; i < kBindingSlots; ++i) {
      slots[i] = vk::DescriptorSetLayoutBinding(i, vk::DescriptorType::eStorageBuffer, 1,
                                                vk::ShaderStageFlagBits::eCompute);
    }
    set_layout_ = device_.createDescriptorSetLayout(vk::DescriptorSetLayoutCreateInfo({}, slots));
    vk::PushConstantRange push_range(vk::ShaderStageFlagBits::eCompute, 0, kPushConstantBytes);
    pipeline_layout_ =
        device_.createPipelineLayout(vk::PipelineLayoutCreateInfo({}, set_layout_, push_range));
    dummy_ = create_device_buffer(256);
  } catch (...) {
    teardown();
    throw;
  }
}

Device::~Device() {
  teardown();
}

void Device::teardown() noexcept {
  if (!device_) return;
  try {
    if (recording_) flush();
  } catch (...) {
    // Closing must not fail; whatever was pending is lost with the device.
  }
  try {
    device_.waitIdle();
  } catch (...) {
    // A lost device still has to release its objects.
  }
  for (auto& transient : transients_) free_buffer(transient);
  transients_.clear();
  for (auto& spare : spare_staging_) free_buffer(spare);
  spare_staging_.clear();
  free_buffer(dummy_);
  free_buffer(scratch_);
  for (auto& [key, pipe] : pipelines_) device_.destroyPipeline(pipe);
  for (auto pool : descriptor_pools_) device_.destroyDescriptorPool(pool);
  if (pipeline_layout_) device_.destroyPipelineLayout(pipeline_layout_);
  if (set_layout_) device_.destroyDescriptorSetLayout(set_layout_);
  if (fence_) device_.destroyFence(fence_);
  if (command_pool_) device_.destroyCommandPool(command_pool_);
  device_.destroy();
  device_ = nullptr;
}

uint32_t Device::memory_type(uint32_t type_bits, vk::MemoryPropertyFlags required,
                             vk::MemoryPropertyFlags preferred) const {
  const auto memory = physical_.handle.getMemoryProperties();
  int fallback = -1;
  for (uint32_t i = 0; i < memory.memoryTypeCount; ++i) {
    if (!(type_bits & (1u << i))) continue;
    const auto flags = memory.memoryTypes[i].propertyFlags;
    if ((flags & required) != required) continue;
    if ((flags & preferred) == preferred) return i;
    if (fallback < 0) fallback = int(i);
  }
  require(fallback >= 0, APR_ERR_DEVICE, "Vulkan device offers no suitable memory type");
  return uint32_t(fallback);
}

DeviceBuffer Device::create_buffer(uint64_t nbytes, vk::MemoryPropertyFlags required,
                                   vk::MemoryPropertyFlags preferred) {
  DeviceBuffer out;
  out.size = round_up(std::max<uint64_t>(nbytes, 4), 256);
  out.buffer = device_.createBuffer(vk::BufferCreateInfo(
      {}, out.size,
      vk::BufferUsageFlagBits::eStorageBuffer | vk::BufferUsageFlagBits::eTransferSrc |
          vk::BufferUsageFlagBits::eTransferDst));
  try {
    const auto needs = device_.getBufferMemoryRequirements(out.buffer);
    out.memory = device_.allocateMemory(
        vk::MemoryAllocateInfo(needs.size, memory_type(needs.memoryTypeBits, required, preferred)));
    device_.bindBufferMemory(out.buffer, out.memory, 0);
    if (required & vk::MemoryPropertyFlagBits::eHostVisible) {
      out.mapped = device_.mapMemory(out.memory, 0, VK_WHOLE_SIZE);
    }
  } catch (...) {
    free_buffer(out);
    throw;
  }
  return out;
}

void Device::free_buffer(DeviceBuffer& buffer) {
  if (buffer.buffer) device_.destroyBuffer(buffer.buffer);
  if (buffer.memory) device_.freeMemory(buffer.memory);  // also unmaps
  buffer = DeviceBuffer{};
}

DeviceBuffer Device::create_device_buffer(uint64_t nbytes) {
  return create_buffer(nbytes, vk::MemoryPropertyFlagBits::eDeviceLocal, {});
}

void Device::destroy_buffer(DeviceBuffer& buffer) {
  if (recording_) flush();
  free_buffer(buffer);
}

void Device::release_buffer(DeviceBuffer& buffer) noexcept {
  try {
    destroy_buffer(buffer);
  } catch (...) {
    // The batch did not finish (a lost device): the memory stays with the device.
  }
}

DeviceBuffer& Device::new_transient(uint64_t nbytes) {
  auto spare = std::find_if(spare_staging_.begin(), spare_staging_.end(),
                            [&](const DeviceBuffer& b) { return b.size >= nbytes; });
  if (spare != spare_staging_.end()) {
    transients_.push_back(*spare);
    spare_staging_.erase(spare);
  } else {
    transients_.push_back(create_buffer(
        nbytes,
        vk::MemoryPropertyFlagBits::eHostVisible | vk::MemoryPropertyFlagBits::eHostCoherent, {}));
  }
  transient_bytes_ += transients_.back().size;
  return transients_.back();
}

vk::CommandBuffer Device::begin_command() {
  if (!recording_) {
    command_buffer_.begin(
        vk::CommandBufferBeginInfo(vk::CommandBufferUsageFlagBits::eOneTimeSubmit));
    recording_ = true;
  } else {
    // Every kernel may read what any earlier one wrote.
    const auto stages =
        vk::PipelineStageFlagBits::eComputeShader | vk::PipelineStageFlagBits::eTransfer;
    vk::MemoryBarrier barrier(vk::AccessFlagBits::eShaderWrite | vk::AccessFlagBits::eTransferWrite,
                              vk::AccessFlagBits::eShaderRead | vk::AccessFlagBits::eShaderWrite |
                                  vk::AccessFlagBits::eTransferRead |
                                  vk::AccessFlagBits::eTransferWrite);
    command_buffer_.pipelineBarrier(stages, stages, {}, barrier, {}, {});
  }
  return command_buffer_;
}

void Device::end_command() {
  ++recorded_commands_;
  if (recorded_commands_ >= kMaxCommandsPerBatch ||
      transient_bytes_ >= kMaxTransientBytesPerBatch ||
      transients_.size() >= kMaxTransientsPerBatch) {
    flush();
  }
}

void Device::flush() {
  if (recording_) {
    recording_ = false;
    recorded_commands_ = 0;
    vk::MemoryBarrier to_host(vk::AccessFlagBits::eShaderWrite | vk::AccessFlagBits::eTransferWrite,
                              vk::AccessFlagBits::eHostRead);
    command_buffer_.pipelineBarrier(
        vk::PipelineStageFlagBits::eComputeShader | vk::PipelineStageFlagBits::eTransfer,
        vk::PipelineStageFlagBits::eHost, {}, to_host, {}, {});
    command_buffer_.end();
    vk::SubmitInfo submit({}, {}, command_buffer_);
    vk::Result waited = vk::Result::eSuccess;
    try {
      queue_.submit(submit, fence_);
      waited = device_.waitForFences(fence_, VK_TRUE, kFenceTimeoutNs);
    } catch (...) {
      device_.waitIdle();
      throw;
    }
    device_.resetFences(fence_);
    device_.resetCommandPool(command_pool_);
    require(waited == vk::Result::eSuccess, APR_ERR_DEVICE,
            "Vulkan device did not finish a batch of kernels within 300 s");
  }
  for (auto pool : descriptor_pools_) device_.resetDescriptorPool(pool);
  pool_in_use_ = 0;
  sets_in_pool_ = 0;
  // Small staging buffers are kept for reuse: a session writes a few small inputs per token.
  for (auto& transient : transients_) {
    if (transient.size <= kSpareStagingBytes && spare_staging_.size() < kMaxSpareStaging) {
      spare_staging_.push_back(transient);
    } else {
      free_buffer(transient);
    }
  }
  transients_.clear();
  transient_bytes_ = 0;
}

void Device::upload(const DeviceBuffer& dst, uint64_t offset, const void* src, uint64_t nbytes) {
  const auto* bytes = static_cast<const uint8_t*>(src);
  for (uint64_t done = 0; done < nbytes;) {
    const uint64_t piece = std::min(kUploadChunkBytes, nbytes - done);
    DeviceBuffer& staging = new_transient(piece);
    std::memcpy(staging.mapped, bytes + done, piece);
    begin_command().copyBuffer(staging.buffer, dst.buffer, vk::BufferCopy(0, offset + done, piece));
    end_command();
    done += piece;
  }
}

const DeviceBuffer& Device::transient_input(const void* data, uint64_t nbytes) {
  DeviceBuffer& buffer = new_transient(nbytes);
  std::memcpy(buffer.mapped, data, nbytes);
  return buffer;
}

void Device::copy(const DeviceBuffer& src, const DeviceBuffer& dst,
                  std::span<const vk::BufferCopy> regions) {
  if (regions.empty()) return;
  begin_command().copyBuffer(src.buffer, dst.buffer, regions.size(), regions.data());
  end_command();
}

void Device::download(const DeviceBuffer& src, std::span<const vk::BufferCopy> regions, void* dst,
                      uint64_t dst_bytes) {
  if (dst_bytes == 0) {
    flush();
    return;
  }
  const auto required =
      vk::MemoryPropertyFlagBits::eHostVisible | vk::MemoryPropertyFlagBits::eHostCoherent;
  DeviceBuffer readback =
      create_buffer(dst_bytes, required, vk::MemoryPropertyFlagBits::eHostCached);
  try {
    begin_command().copyBuffer(src.buffer, readback.buffer, regions.size(), regions.data());
    ++recorded_commands_;
    flush();
    std::memcpy(dst, readback.mapped, dst_bytes);
  } catch (...) {
    free_buffer(readback);
    throw;
  }
  free_buffer(readback);
}

Binding Device::bind(const DeviceBuffer& buffer, uint64_t offset, uint64_t nbytes) const {
  const uint64_t alignment = std::max<uint64_t>(limits().minStorageBufferOffsetAlignment, 4);
  Binding b;
  b.buffer = buffer.buffer;
  b.offset = offset - offset % alignment;
  const uint64_t lead = offset - b.offset;
  b.range = round_up(lead + std::max<uint64_t>(nbytes, 4), 4);
  b.range = std::min(b.range, buffer.size - b.offset);
  b.lead_bytes = uint32_t(lead);
  b.word_offset = uint32_t(lead / 4);
  require(b.range <= limits().maxStorageBufferRange, APR_ERR_UNSUPPORTED,
          "a kernel operand of " + std::to_string(nbytes) +
              " bytes exceeds this device's maxStorageBufferRange of " +
              std::to_string(limits().maxStorageBufferRange) + " bytes");
  return b;
}

std::array<uint32_t, 3> Device::grid_1d(uint64_t n_groups) const {
  const uint64_t max_x = limits().maxComputeWorkGroupCount[0];
  const uint64_t x = std::min(n_groups, max_x);
  const uint64_t y = x == 0 ? 0 : (n_groups + x - 1) / x;
  require(y <= limits().maxComputeWorkGroupCount[1], APR_ERR_UNSUPPORTED,
          "kernel needs " + std::to_string(n_groups) + " workgroups, more than this device allows");
  return {uint32_t(x), uint32_t(y), 1};
}

vk::Pipeline Device::pipeline(Kernel kernel, apr_type weight_type) {
  const bool typed = kernel == Kernel::kMatmul || kernel == Kernel::kEmbed;
  const auto key = std::make_pair(int(kernel), typed ? weight_type : apr_type(0));
  if (auto it = pipelines_.find(key); it != pipelines_.end()) return it->second;
  const SpirvCode code = spirv_code(kernel, weight_type);
  require(code.words != nullptr, APR_ERR_UNSUPPORTED,
          "no Vulkan kernel for weight type " + std::to_string(weight_type));
  vk::ShaderModule module =
      device_.createShaderModule(vk::ShaderModuleCreateInfo({}, code.size_bytes, code.words));
  vk::ComputePipelineCreateInfo info(
      {}, vk::PipelineShaderStageCreateInfo({}, vk::ShaderStageFlagBits::eCompute, module, "main"),
      pipeline_layout_);
  vk::ResultValue<vk::Pipeline> created{vk::Result::eSuccess, {}};
  try {
    created = device_.createComputePipeline(nullptr, info);
  } catch (...) {
    device_.destroyShaderModule(module);
    throw;
  }
  device_.destroyShaderModule(module);
  require(created.result == vk::Result::eSuccess, APR_ERR_DEVICE,
          "Vulkan driver could not create a compute pipeline");
  pipelines_.emplace(key, created.value);
  return created.value;
}

vk::DescriptorSet Device::allocate_descriptor_set() {
  if (descriptor_pools_.empty() || sets_in_pool_ == kSetsPerPool) {
    if (!descriptor_pools_.empty()) ++pool_in_use_;
    sets_in_pool_ = 0;
    if (pool_in_use_ == descriptor_pools_.size()) {
      vk::DescriptorPoolSize size(vk::DescriptorType::eStorageBuffer, kSetsPerPool * kBindingSlots);
      descriptor_pools_.push_back(
          device_.createDescriptorPool(vk::DescriptorPoolCreateInfo({}, kSetsPerPool, size)));
    }
  }
  ++sets_in_pool_;
  return device_
      .allocateDescriptorSets(
          vk::DescriptorSetAllocateInfo(descriptor_pools_[pool_in_use_], set_layout_))
      .front();
}

void Device::dispatch(Kernel kernel, apr_type weight_type, std::span<const Binding> bindings,
                      const void* push, uint32_t push_bytes, std::array<uint32_t, 3> groups) {
  require(bindings.size() <= kBindingSlots && push_bytes <= kPushConstantBytes, APR_ERR_INTERNAL,
          "kernel interface exceeds the pipeline layout");
  if (groups[0] == 0 || groups[1] == 0 || groups[2] == 0) return;
  const vk::Pipeline pipe = pipeline(kernel, weight_type);
  const vk::DescriptorSet set = allocate_descriptor_set();
  const Binding unused = unused_binding();
  std::array<vk::DescriptorBufferInfo, kBindingSlots> infos;
  for (uint32_t i = 0; i < kBindingSlots; ++i) {
    const Binding& b = i < bindings.size() ? bindings[i] : unused;
    infos[i] = vk::DescriptorBufferInfo(b.buffer, b.offset, b.range);
  }
  vk::WriteDescriptorSet write(set, 0, 0, kBindingSlots, vk::DescriptorType::eStorageBuffer,
                               nullptr, infos.data());
  device_.updateDescriptorSets(write, {});

  vk::CommandBuffer cmd = begin_command();
  cmd.bindPipeline(vk::PipelineBindPoint::eCompute, pipe);
  cmd.bindDescriptorSets(vk::PipelineBindPoint::eCompute, pipeline_layout_, 0, set, {});
  cmd.pushConstants(pipeline_layout_, vk::ShaderStageFlagBits::eCompute, 0, push_bytes, push);
  cmd.dispatch(groups[0], groups[1], groups[2]);
  end_command();
}

const DeviceBuffer& Device::trace_scratch(uint64_t nbytes) {
  if (scratch_.size < nbytes) {
    destroy_buffer(scratch_);
    scratch_ = create_device_buffer(nbytes);
  }
  return scratch_;
}

}  // namespace apr_vk
