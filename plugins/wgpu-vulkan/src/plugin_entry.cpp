// SPDX-License-Identifier: MIT
// The C ABI surface: the function table, and the translation of C++ failures into status codes
// and messages. Nothing may throw past these functions.
#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>

#include "apr/plugin.h"
#include "plugin_objects.hpp"
#include "vulkan_instance.hpp"

namespace apr_vk {
namespace {

// A copy of the host's services: only the struct's members are promised to stay valid.
bool g_has_host = false;
apr_host g_host{};
std::mutex g_devices_mutex;
std::unordered_set<apr_device*> g_open_devices;

void log_message(int32_t level, const std::string& message) {
  if (g_has_host && g_host.log) g_host.log(g_host.user_data, level, message.c_str());
}

apr_status record_failure(apr_status status, const std::string& message) {
  apr_sdk::set_last_error("vulkan: " + message);
  log_message(APR_LOG_DEBUG, apr_sdk::last_error());
  return status;
}

// Runs body, mapping every exception to a status and the thread's error message.
template <typename Body>
apr_status guarded(const char* call, Body&& body) {
  try {
    body();
    return APR_OK;
  } catch (const PluginError& e) {
    return record_failure(e.status(), e.what());
  } catch (const vk::OutOfDeviceMemoryError& e) {
    return record_failure(APR_ERR_OUT_OF_MEMORY, std::string(call) + ": out of device memory");
  } catch (const vk::OutOfHostMemoryError& e) {
    return record_failure(APR_ERR_OUT_OF_MEMORY, std::string(call) + ": out of host memory");
  } catch (const vk::SystemError& e) {
    return record_failure(APR_ERR_DEVICE, std::string(call) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return record_failure(APR_ERR_OUT_OF_MEMORY, std::string(call) + ": out of host memory");
  } catch (const std::exception& e) {
    return record_failure(APR_ERR_INTERNAL, std::string(call) + ": " + e.what());
  } catch (...) {
    return record_failure(APR_ERR_INTERNAL, std::string(call) + ": unknown failure");
  }
}

apr_device& checked_device(apr_device* device, const char* call) {
  require(device != nullptr && device->vk != nullptr, APR_ERR_INVALID_ARGUMENT,
          std::string(call) + ": device is NULL");
  return *device;
}

void close_device(apr_device* device) {
  for (const apr_weight* w : device->weights) {
    auto* weight = const_cast<apr_weight*>(w);
    device->vk->destroy_buffer(weight->memory);
    delete weight;
  }
  for (const apr_buffer* b : device->buffers) {
    auto* buffer = const_cast<apr_buffer*>(b);
    device->vk->destroy_buffer(buffer->memory);
    delete buffer;
  }
  delete device;
}

// ---- lifecycle ----------------------------------------------------------------------------

apr_status plugin_init(const apr_host* host) {
  g_host = apr_host{};
  g_has_host = false;
  if (host != nullptr) {
    const apr_status status = guarded("init", [&] { g_host = apr_sdk::copy_host(host); });
    if (status != APR_OK) return status;
    g_has_host = true;
  }
  return APR_OK;
}

void plugin_shutdown() {
  try {
    std::lock_guard lock(g_devices_mutex);
    for (apr_device* device : g_open_devices) close_device(device);
    g_open_devices.clear();
    VulkanInstance::release();
  } catch (...) {
    // Shutdown has no way to report; the process is going away from us anyway.
  }
  g_has_host = false;
}

apr_status plugin_probe(apr_probe_result* result) {
  if (result == nullptr) return record_failure(APR_ERR_INVALID_ARGUMENT, "probe: result is NULL");
  uint32_t score = 0;
  std::string reason;
  const apr_status status = guarded("probe", [&] {
    const auto& devices = VulkanInstance::get().devices();
    const PhysicalDeviceEntry* best = &devices.front();
    for (const auto& d : devices) {
      if (device_score(d.properties.deviceType) > device_score(best->properties.deviceType)) {
        best = &d;
      }
    }
    score = device_score(best->properties.deviceType);
    reason = std::to_string(devices.size()) +
             " Vulkan device(s); best: " + std::string(best->properties.deviceName.data()) + " (" +
             device_type_name(best->properties.deviceType) + ", Vulkan " +
             version_string(best->properties.apiVersion) + ")";
  });
  if (status != APR_OK) {
    score = 0;
    reason = apr_sdk::last_error() + std::strlen("vulkan: ");
  }
  APR_SDK_SET(result, score, score);
  APR_SDK_SET_STRING(result, reason, reason);
  // An unusable machine is a valid probe answer, not a failed call.
  return APR_OK;
}

const char* plugin_error_message() {
  return apr_sdk::last_error();
}

// ---- devices ------------------------------------------------------------------------------

uint32_t plugin_device_count() {
  uint32_t count = 0;
  guarded("device_count", [&] { count = uint32_t(VulkanInstance::get().devices().size()); });
  return count;
}

const PhysicalDeviceEntry& device_entry(uint32_t index, const char* call) {
  const auto& devices = VulkanInstance::get().devices();
  require(index < devices.size(), APR_ERR_INVALID_ARGUMENT,
          std::string(call) + ": device index " + std::to_string(index) + " is out of range (" +
              std::to_string(devices.size()) + " devices)");
  return devices[index];
}

apr_status plugin_device_info(uint32_t index, apr_device_info* info) {
  return guarded("device_info", [&] {
    require(info != nullptr, APR_ERR_INVALID_ARGUMENT, "device_info: info is NULL");
    const PhysicalDeviceEntry& entry = device_entry(index, "device_info");
    const auto& p = entry.properties;
    const std::string description =
        "Vulkan " + version_string(p.apiVersion) + ", " + device_type_name(p.deviceType) +
        ", vendor 0x" +
        [&] {
          char hex[16];
          std::snprintf(hex, sizeof hex, "%04x", p.vendorID);
          return std::string(hex);
        }() +
        ", driver version " + std::to_string(p.driverVersion) +
        ", compute shaders from embedded SPIR-V, quantized weights decoded on the device";
    APR_SDK_SET(info, kind, apr_device_kind(p.deviceType));
    APR_SDK_SET(info, memory_bytes, entry.device_local_bytes);
    APR_SDK_SET_STRING(info, name, p.deviceName.data());
    APR_SDK_SET_STRING(info, description, description);
  });
}

apr_status plugin_device_caps(uint32_t index, apr_device_caps* caps) {
  return guarded("device_caps", [&] {
    require(caps != nullptr, APR_ERR_INVALID_ARGUMENT, "device_caps: caps is NULL");
    const PhysicalDeviceEntry& entry = device_entry(index, "device_caps");
    uint64_t types = 0;
    for (apr_type t = 0; t < 64; ++t)
      if (weight_format(t)) types |= uint64_t{1} << t;
    APR_SDK_SET(caps, weight_types, types);
    APR_SDK_SET(caps, features, uint64_t{APR_FEATURE_ROPE_FREQ_FACTORS | APR_FEATURE_FUSED_TRACE});
    APR_SDK_SET(caps, max_buffer_bytes, uint64_t{entry.properties.limits.maxStorageBufferRange});
  });
}

apr_status plugin_device_open(uint32_t index, const apr_device_options*, apr_device** device) {
  return guarded("device_open", [&] {
    require(device != nullptr, APR_ERR_INVALID_ARGUMENT, "device_open: device is NULL");
    *device = nullptr;
    const PhysicalDeviceEntry& entry = device_entry(index, "device_open");
    auto opened = std::make_unique<apr_device>();
    opened->vk = std::make_unique<Device>(entry);
    std::lock_guard lock(g_devices_mutex);
    g_open_devices.insert(opened.get());
    *device = opened.release();
  });
}

void plugin_device_close(apr_device* device) {
  if (device == nullptr) return;
  guarded("device_close", [&] {
    std::lock_guard lock(g_devices_mutex);
    if (g_open_devices.erase(device) == 0) return;  // not ours, or closed already
    close_device(device);
  });
}

apr_status plugin_set_trace_sink(apr_device* device, const apr_trace_sink* sink) {
  return guarded("set_trace_sink", [&] {
    apr_device& dev = checked_device(device, "set_trace_sink");
    dev.trace.set(sink);
  });
}

// ---- memory -------------------------------------------------------------------------------

apr_status plugin_buffer_alloc(apr_device* device, uint64_t nbytes, apr_buffer** buffer) {
  return guarded("buffer_alloc", [&] {
    apr_device& dev = checked_device(device, "buffer_alloc");
    require(buffer != nullptr, APR_ERR_INVALID_ARGUMENT, "buffer_alloc: buffer is NULL");
    *buffer = nullptr;
    auto created = std::make_unique<apr_buffer>();
    created->nbytes = nbytes;
    created->memory = dev.vk->create_device_buffer(nbytes);
    dev.buffers.insert(created.get());
    *buffer = created.release();
  });
}

void plugin_buffer_free(apr_device* device, apr_buffer* buffer) {
  if (device == nullptr || buffer == nullptr) return;
  guarded("buffer_free", [&] {
    if (device->buffers.erase(buffer) == 0) return;
    device->vk->destroy_buffer(buffer->memory);
    delete buffer;
  });
}

apr_status plugin_buffer_write(apr_device* device, apr_buffer* buffer, uint64_t offset,
                               const void* src, uint64_t nbytes) {
  return guarded("buffer_write", [&] {
    apr_device& dev = checked_device(device, "buffer_write");
    const apr_buffer& b = checked_buffer(dev, buffer, "buffer_write: buffer");
    require(offset <= b.nbytes && nbytes <= b.nbytes - offset, APR_ERR_INVALID_ARGUMENT,
            "buffer_write: bytes [" + std::to_string(offset) + ", +" + std::to_string(nbytes) +
                ") lie outside the buffer of " + std::to_string(b.nbytes) + " bytes");
    if (nbytes == 0) return;
    require(src != nullptr, APR_ERR_INVALID_ARGUMENT, "buffer_write: src is NULL");
    require(offset % 4 == 0 && nbytes % 4 == 0, APR_ERR_INVALID_ARGUMENT,
            "buffer_write: offset and size must be multiples of 4");
    dev.vk->upload(b.memory, offset, src, nbytes);
  });
}

apr_status plugin_buffer_read(apr_device* device, const apr_buffer* buffer, uint64_t offset,
                              void* dst, uint64_t nbytes) {
  return guarded("buffer_read", [&] {
    apr_device& dev = checked_device(device, "buffer_read");
    const apr_buffer& b = checked_buffer(dev, buffer, "buffer_read: buffer");
    require(offset <= b.nbytes && nbytes <= b.nbytes - offset, APR_ERR_INVALID_ARGUMENT,
            "buffer_read: bytes [" + std::to_string(offset) + ", +" + std::to_string(nbytes) +
                ") lie outside the buffer of " + std::to_string(b.nbytes) + " bytes");
    require(nbytes == 0 || dst != nullptr, APR_ERR_INVALID_ARGUMENT, "buffer_read: dst is NULL");
    const vk::BufferCopy region(offset, 0, nbytes);
    dev.vk->download(b.memory, {&region, nbytes ? 1u : 0u}, dst, nbytes);
  });
}

apr_status plugin_synchronize(apr_device* device) {
  return guarded("synchronize", [&] { checked_device(device, "synchronize").vk->flush(); });
}

apr_status plugin_weight_create(apr_device* device, const apr_weight_desc* desc,
                                apr_weight** weight) {
  return guarded("weight_create", [&] {
    apr_device& dev = checked_device(device, "weight_create");
    require(weight != nullptr, APR_ERR_INVALID_ARGUMENT, "weight_create: weight is NULL");
    *weight = nullptr;
    create_weight(dev, checked_args(desc, "apr_weight_desc"), weight);
  });
}

void plugin_weight_free(apr_device* device, apr_weight* weight) {
  if (device == nullptr || weight == nullptr) return;
  guarded("weight_free", [&] {
    if (device->weights.erase(weight) == 0) return;
    device->vk->destroy_buffer(weight->memory);
    delete weight;
  });
}

// ---- kernels ------------------------------------------------------------------------------

#define APR_VK_KERNEL_ENTRY(fn, Args, last_member)               \
  apr_status plugin_##fn(apr_device* device, const Args* args) { \
    return guarded(#fn, [&] {                                    \
      apr_device& dev = checked_device(device, #fn);             \
      fn(dev, checked_args(args, #Args));                        \
    });                                                          \
  }

APR_VK_KERNEL_ENTRY(embed, apr_embed_args, out_offset)
APR_VK_KERNEL_ENTRY(rms_norm, apr_rms_norm_args, eps)
APR_VK_KERNEL_ENTRY(matmul, apr_matmul_args, y_row_stride)
APR_VK_KERNEL_ENTRY(add, apr_add_args, b_period)
APR_VK_KERNEL_ENTRY(rope, apr_rope_args, freq_scale)
APR_VK_KERNEL_ENTRY(kv_store, apr_kv_store_args, v_cache)
APR_VK_KERNEL_ENTRY(attention, apr_attention_args, out_offset)
APR_VK_KERNEL_ENTRY(swiglu, apr_swiglu_args, layer)
APR_VK_KERNEL_ENTRY(trace_emit, apr_trace_emit_args, row_stride)

#undef APR_VK_KERNEL_ENTRY

const char* const kAliases[] = {"wgpu", nullptr};

apr_plugin_api make_api() {
  apr_plugin_api api{};
  api.struct_size = sizeof(apr_plugin_api);
  api.abi_major = APR_ABI_MAJOR;
  api.abi_minor = APR_ABI_MINOR;
  api.name = "vulkan";
  api.version = "0.1.0";
  api.description =
      "Vulkan compute backend (GLSL shaders, quantized weights decoded on the device)";
  api.aliases = kAliases;
  api.init = plugin_init;
  api.shutdown = plugin_shutdown;
  api.probe = plugin_probe;
  api.error_message = plugin_error_message;
  api.device_count = plugin_device_count;
  api.device_info = plugin_device_info;
  api.device_open = plugin_device_open;
  api.device_close = plugin_device_close;
  api.set_trace_sink = plugin_set_trace_sink;
  api.buffer_alloc = plugin_buffer_alloc;
  api.buffer_free = plugin_buffer_free;
  api.buffer_write = plugin_buffer_write;
  api.buffer_read = plugin_buffer_read;
  api.synchronize = plugin_synchronize;
  api.weight_create = plugin_weight_create;
  api.weight_free = plugin_weight_free;
  api.embed = plugin_embed;
  api.rms_norm = plugin_rms_norm;
  api.matmul = plugin_matmul;
  api.add = plugin_add;
  api.rope = plugin_rope;
  api.kv_store = plugin_kv_store;
  api.attention = plugin_attention;
  api.swiglu = plugin_swiglu;
  api.trace_emit = plugin_trace_emit;
  api.device_caps = plugin_device_caps;
  // Every call is recorded and submitted eagerly; step capture is left to a later version.
  api.step_begin = nullptr;
  api.step_end = nullptr;
  return api;
}

const apr_plugin_api g_api = make_api();

}  // namespace
}  // namespace apr_vk

extern "C" APR_PLUGIN_EXPORT const apr_plugin_api* apr_plugin_entry(uint32_t host_abi_major,
                                                                    uint32_t /*host_abi_minor*/) {
  if (host_abi_major != APR_ABI_MAJOR) return nullptr;
  return &apr_vk::g_api;
}
