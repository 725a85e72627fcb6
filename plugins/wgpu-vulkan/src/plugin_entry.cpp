// SPDX-License-Identifier: MIT
// The Vulkan backend as the kit sees it: identity, probe, the physical devices, and which Vulkan
// exceptions mean what. The kit (apr/plugin_sdk.hpp) builds the function table, checks every
// argument and turns failures into statuses; memory and kernels are in the other files.
#include <cstdio>
#include <optional>
#include <string>

#include "plugin_objects.hpp"
#include "spirv_table.hpp"
#include "vulkan_instance.hpp"

namespace apr_vk {
namespace {

// index is checked by the kit against device_count().
const PhysicalDeviceEntry& physical(uint32_t index) {
  return VulkanInstance::get().devices()[index];
}

struct VulkanBackend {
  static constexpr const char* kName = "vulkan";
  static constexpr const char* kVersion = "0.1.0";
  static constexpr const char* kDescription =
      "Vulkan compute backend (GLSL shaders, quantized weights decoded on the device)";
  static constexpr const char* const kAliasList[] = {"wgpu", nullptr};
  static constexpr const char* const* kAliases = kAliasList;

  // A machine without a Vulkan loader or device is a valid answer (score 0), not a failed call.
  static apr_sdk::ProbeAnswer probe() {
    try {
      const auto& devices = VulkanInstance::get().devices();
      const PhysicalDeviceEntry* best = &devices.front();
      for (const auto& d : devices)
        if (device_score(d.properties.deviceType) > device_score(best->properties.deviceType))
          best = &d;
      const auto& p = best->properties;
      const std::string reason =
          std::to_string(devices.size()) + " Vulkan device(s); best: " + p.deviceName.data() +
          " (" + device_type_name(p.deviceType) + ", Vulkan " + version_string(p.apiVersion) + ")";
      return {device_score(p.deviceType), reason};
    } catch (const std::exception& e) {
      return {0, e.what()};
    }
  }
  // Throws "no Vulkan ..." (APR_ERR_UNAVAILABLE) without Vulkan, so that device_open and
  // device_info say why; the kit's device_count answers 0 then.
  static uint32_t device_count() { return uint32_t(VulkanInstance::get().devices().size()); }
  static apr_sdk::DeviceFacts device_info(uint32_t index) {
    const auto& p = physical(index).properties;
    char vendor[16];
    std::snprintf(vendor, sizeof vendor, "%04x", p.vendorID);
    return {apr_device_kind(p.deviceType), physical(index).device_local_bytes, p.deviceName.data(),
            "Vulkan " + version_string(p.apiVersion) + ", " + device_type_name(p.deviceType) +
                ", vendor 0x" + vendor + ", driver version " + std::to_string(p.driverVersion) +
                ", compute shaders from embedded SPIR-V, quantized weights decoded on the device"};
  }
  static apr_sdk::DeviceLimits device_caps(uint32_t index) {
    return {APR_FEATURE_ROPE_FREQ_FACTORS | APR_FEATURE_FUSED_TRACE | APR_FEATURE_NORM_GROUPS |
                APR_FEATURE_ATTN_WINDOW | APR_FEATURE_ATTN_SOFTCAP | APR_FEATURE_GELU,
            physical(index).properties.limits.maxStorageBufferRange};
  }
  static bool supports_weight_type(apr_type type) { return decodes_weight_type(type); }
  // n_threads means nothing to a Vulkan device.
  static std::unique_ptr<apr_device> device_open(uint32_t index, const apr_sdk::DeviceOptions&) {
    return std::make_unique<apr_device>(physical(index));
  }
  // The kit has closed every device by now.
  static void shutdown() { VulkanInstance::release(); }

  static std::optional<apr_status> classify(const std::exception& e) {
    if (dynamic_cast<const vk::OutOfDeviceMemoryError*>(&e) ||
        dynamic_cast<const vk::OutOfHostMemoryError*>(&e))
      return APR_ERR_OUT_OF_MEMORY;
    if (dynamic_cast<const vk::SystemError*>(&e)) return APR_ERR_DEVICE;
    return std::nullopt;
  }
};

}  // namespace
}  // namespace apr_vk

APR_SDK_PLUGIN_ENTRY(apr_vk::VulkanBackend)
