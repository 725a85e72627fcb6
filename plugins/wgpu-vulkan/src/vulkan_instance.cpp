// SPDX-License-Identifier: MIT
#include "vulkan_instance.hpp"

#include <mutex>

#include "plugin_error.hpp"

namespace apr_vk {
namespace {

std::mutex g_mutex;
std::unique_ptr<VulkanInstance> g_instance;

}  // namespace

VulkanInstance& VulkanInstance::get() {
  std::lock_guard lock(g_mutex);
  if (!g_instance) {
    std::unique_ptr<VulkanInstance> created(new VulkanInstance());
    created->create();
    g_instance = std::move(created);
  }
  return *g_instance;
}

void VulkanInstance::release() {
  std::lock_guard lock(g_mutex);
  g_instance.reset();
}

VulkanInstance::~VulkanInstance() {
  if (instance_) instance_.destroy();
}

void VulkanInstance::create() {
  try {
    loader_ = std::make_unique<vk::DynamicLoader>();
  } catch (const std::exception& e) {
    fail(APR_ERR_UNAVAILABLE, std::string("no Vulkan loader: ") + e.what());
  }
  auto get_instance_proc =
      loader_->getProcAddress<PFN_vkGetInstanceProcAddr>("vkGetInstanceProcAddr");
  require(get_instance_proc != nullptr, APR_ERR_UNAVAILABLE,
          "no Vulkan loader: libvulkan has no vkGetInstanceProcAddr");
  VULKAN_HPP_DEFAULT_DISPATCHER.init(get_instance_proc);

  vk::ApplicationInfo app("apr", 1, "apr-plugin-vulkan", 1, VK_API_VERSION_1_0);
  vk::InstanceCreateInfo info({}, &app);
  try {
    instance_ = vk::createInstance(info);
  } catch (const vk::SystemError& e) {
    fail(APR_ERR_UNAVAILABLE, std::string("no Vulkan device: vkCreateInstance failed: ") +
                                  e.what() + " (no usable driver?)");
  }
  // Only instance-level functions go into the shared dispatcher; device functions then resolve
  // through the loader's trampolines, which stay right with several devices open.
  VULKAN_HPP_DEFAULT_DISPATCHER.init(instance_);

  std::vector<vk::PhysicalDevice> physical_devices;
  try {
    physical_devices = instance_.enumeratePhysicalDevices();
  } catch (const vk::SystemError& e) {
    fail(APR_ERR_UNAVAILABLE,
         std::string("no Vulkan device: vkEnumeratePhysicalDevices failed: ") + e.what());
  }
  for (const vk::PhysicalDevice& pd : physical_devices) {
    PhysicalDeviceEntry entry;
    entry.handle = pd;
    entry.properties = pd.getProperties();
    const auto families = pd.getQueueFamilyProperties();
    bool has_compute = false;
    for (uint32_t i = 0; i < families.size(); ++i) {
      if (families[i].queueFlags & vk::QueueFlagBits::eCompute) {
        entry.compute_queue_family = i;
        has_compute = true;
        break;
      }
    }
    if (!has_compute) continue;
    const auto memory = pd.getMemoryProperties();
    for (uint32_t i = 0; i < memory.memoryHeapCount; ++i) {
      if (memory.memoryHeaps[i].flags & vk::MemoryHeapFlagBits::eDeviceLocal) {
        entry.device_local_bytes += memory.memoryHeaps[i].size;
      }
    }
    devices_.push_back(entry);
  }
  require(!devices_.empty(), APR_ERR_UNAVAILABLE,
          "no Vulkan device: the Vulkan loader found no device with a compute queue");
}

uint32_t apr_device_kind(vk::PhysicalDeviceType type) {
  switch (type) {
    case vk::PhysicalDeviceType::eDiscreteGpu:
      return APR_DEVICE_KIND_DISCRETE_GPU;
    case vk::PhysicalDeviceType::eIntegratedGpu:
      return APR_DEVICE_KIND_INTEGRATED_GPU;
    case vk::PhysicalDeviceType::eCpu:
    case vk::PhysicalDeviceType::eVirtualGpu:
      return APR_DEVICE_KIND_VIRTUAL;
    default:
      return APR_DEVICE_KIND_OTHER;
  }
}

uint32_t device_score(vk::PhysicalDeviceType type) {
  switch (type) {
    case vk::PhysicalDeviceType::eDiscreteGpu:
      return 100;
    case vk::PhysicalDeviceType::eIntegratedGpu:
      return 60;
    case vk::PhysicalDeviceType::eVirtualGpu:
      return 30;
    case vk::PhysicalDeviceType::eOther:
      return 20;
    case vk::PhysicalDeviceType::eCpu:
      return 5;
  }
  return 1;
}

std::string version_string(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) +
         "." + std::to_string(VK_API_VERSION_PATCH(v));
}

std::string device_type_name(vk::PhysicalDeviceType type) {
  switch (type) {
    case vk::PhysicalDeviceType::eDiscreteGpu:
      return "discrete GPU";
    case vk::PhysicalDeviceType::eIntegratedGpu:
      return "integrated GPU";
    case vk::PhysicalDeviceType::eVirtualGpu:
      return "virtual GPU";
    case vk::PhysicalDeviceType::eCpu:
      return "CPU (software)";
    default:
      return "other";
  }
}

}  // namespace apr_vk
