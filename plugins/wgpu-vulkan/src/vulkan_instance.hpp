// SPDX-License-Identifier: MIT
// The process-wide Vulkan loader and instance, and the physical devices it offers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vulkan_hpp.hpp"

namespace apr_vk {

struct PhysicalDeviceEntry {
  vk::PhysicalDevice handle;
  vk::PhysicalDeviceProperties properties;
  uint64_t device_local_bytes = 0;
  uint32_t compute_queue_family = 0;
};

class VulkanInstance {
 public:
  // The shared instance, created on first use. Throws PluginError(APR_ERR_UNAVAILABLE) with
  // "no Vulkan loader: ..." or "no Vulkan device: ..." when this machine cannot run Vulkan; a
  // later call tries again.
  static VulkanInstance& get();
  // Destroys the shared instance (plugin shutdown); no device may be open.
  static void release();

  ~VulkanInstance();
  VulkanInstance(const VulkanInstance&) = delete;
  VulkanInstance& operator=(const VulkanInstance&) = delete;

  vk::Instance instance() const { return instance_; }
  // Only devices with a compute queue; never empty.
  const std::vector<PhysicalDeviceEntry>& devices() const { return devices_; }

 private:
  VulkanInstance() = default;
  void create();

  std::unique_ptr<vk::DynamicLoader> loader_;
  vk::Instance instance_;
  std::vector<PhysicalDeviceEntry> devices_;
};

// APR_DEVICE_KIND_* of a Vulkan device type; CPU implementations (lavapipe, SwiftShader) are
// software rasterisers, so VIRTUAL.
uint32_t apr_device_kind(vk::PhysicalDeviceType type);
// Probe score of a device: discrete GPUs first, then integrated, then anything else, software last
// but still usable.
uint32_t device_score(vk::PhysicalDeviceType type);
std::string version_string(uint32_t vulkan_version);
std::string device_type_name(vk::PhysicalDeviceType type);

}  // namespace apr_vk
