// SPDX-License-Identifier: MIT
// The plugin's only exported symbol and its function table. Every entry point converts the
// C++ failures of cuda_backend.cpp into a status code plus a per-thread message, so nothing ever
// unwinds across the C ABI.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <new>
#include <string>

#include <apr/plugin_sdk.hpp>

#include "apr/plugin.h"
#include "cuda_backend.hpp"

namespace {

// The per-thread message is the SDK's (apr_sdk::set_last_error / last_error). The cuda code's
// own Failure carries messages that already name the call.

template <typename Fn>
apr_status guarded(const char* call, Fn&& fn) noexcept {
  try {
    fn();
    return APR_OK;
  } catch (const apr_cuda::Failure& f) {
    apr_sdk::set_last_error(f.message);
    return f.status;
  } catch (...) {
    // Anything else (bad_alloc, std::exception, ...) is mapped the SDK's way: rethrown inside
    // apr_sdk::guarded, while it is still the exception being handled here.
    return apr_sdk::guarded(call, [] { throw; });
  }
}

// Runs fn(device, args) after checking both pointers.
template <typename Args, typename Fn>
apr_status kernel_call(const char* call, apr_device* device, const Args* args, Fn fn) noexcept {
  return guarded(call, [&] {
    if (!device || !args) {
      apr_cuda::fail(APR_ERR_INVALID_ARGUMENT, std::string(call) + ": device or args is NULL");
    }
    fn(*device, *args);
  });
}

void write_probe(apr_probe_result* result, uint32_t score, const std::string& reason) {
  APR_SDK_SET(result, score, score);
  APR_SDK_SET_STRING(result, reason, reason);
}

apr_status api_init(const apr_host* host) {
  return guarded("init", [&] { apr_cuda::set_host(host); });
}

void api_shutdown(void) {
  apr_cuda::set_host(nullptr);
}

apr_status api_probe(apr_probe_result* result) {
  if (!result) {
    apr_sdk::set_last_error("probe: result is NULL");
    return APR_ERR_INVALID_ARGUMENT;
  }
  return guarded("probe", [&] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      // On a machine without a driver this is "insufficient driver" (35), not "no device".
      write_probe(result, 0, std::string("no CUDA device: ") + cudaGetErrorString(err));
      return;
    }
    if (count == 0) {
      write_probe(result, 0, "no CUDA device: the driver reports none");
      return;
    }
    std::string found;
    int usable = 0;
    for (int i = 0; i < count; ++i) {
      cudaDeviceProp prop{};
      if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
        (void)cudaGetLastError();
        continue;
      }
      if (!found.empty()) found += ", ";
      found += std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
               std::to_string(prop.minor) + ")";
      if (prop.major >= apr_cuda::kMinComputeMajor) ++usable;
    }
    if (usable == 0) {
      write_probe(result, 0, "no usable CUDA device: " + found + "; this build needs sm_80+");
      return;
    }
    // Above the cpu plugin (10) and a Vulkan discrete GPU (100): on an NVIDIA GPU the native
    // backend is the better choice of the two that can drive it.
    write_probe(result, 200, std::to_string(usable) + " CUDA device(s): " + found);
  });
}

const char* api_error_message(void) {
  return apr_sdk::last_error();
}

uint32_t api_device_count(void) {
  try {
    return apr_cuda::device_count();
  } catch (...) {
    return 0;
  }
}

apr_status api_device_info(uint32_t index, apr_device_info* info) {
  return guarded("device_info", [&] { apr_cuda::device_info(index, info); });
}

apr_status api_device_open(uint32_t index, const apr_device_options* options, apr_device** device) {
  (void)options;  // n_threads: the host-side work here is a thin launch layer
  return guarded("device_open", [&] {
    if (!device) apr_cuda::fail(APR_ERR_INVALID_ARGUMENT, "device_open: device is NULL");
    *device = nullptr;
    *device = apr_cuda::device_open(index);
  });
}

void api_device_close(apr_device* device) {
  try {
    apr_cuda::device_close(device);
  } catch (...) {
  }
}

apr_status api_set_trace_sink(apr_device* device, const apr_trace_sink* sink) {
  return guarded("set_trace_sink", [&] {
    if (!device) apr_cuda::fail(APR_ERR_INVALID_ARGUMENT, "set_trace_sink: device is NULL");
    apr_cuda::set_trace_sink(*device, sink);
  });
}

apr_status api_buffer_alloc(apr_device* device, uint64_t nbytes, apr_buffer** buffer) {
  return guarded("buffer_alloc", [&] {
    if (!device || !buffer) {
      apr_cuda::fail(APR_ERR_INVALID_ARGUMENT, "buffer_alloc: device or buffer is NULL");
    }
    *buffer = nullptr;
    *buffer = apr_cuda::buffer_alloc(*device, nbytes);
  });
}

void api_buffer_free(apr_device* device, apr_buffer* buffer) {
  if (!device) return;
  try {
    apr_cuda::buffer_free(*device, buffer);
  } catch (...) {
  }
}

apr_status api_buffer_write(apr_device* device, apr_buffer* buffer, uint64_t offset,
                            const void* src, uint64_t nbytes) {
  return guarded("buffer_write", [&] {
    if (!device) apr_cuda::fail(APR_ERR_INVALID_ARGUMENT, "buffer_write: device is NULL");
    apr_cuda::buffer_write(*device, buffer, offset, src, nbytes);
  });
}

apr_status api_buffer_read(apr_device* device, const apr_buffer* buffer, uint64_t offset, void* dst,
                           uint64_t nbytes) {
  return guarded("buffer_read", [&] {
    if (!device) apr_cuda::fail(APR_ERR_INVALID_ARGUMENT, "buffer_read: device is NULL");
    apr_cuda::buffer_read(*device, buffer, offset, dst, nbytes);
  });
}

apr_status api_synchronize(apr_device* device) {
  return guarded("synchronize", [&] {
    if (!device) apr_cuda::fail(APR_ERR_INVALID_ARGUMENT, "synchronize: device is NULL");
    apr_cuda::synchronize(*device);
  });
}

apr_status api_device_caps(uint32_t index, apr_device_caps* caps) {
  return guarded("device_caps", [&] {
    if (!caps) apr_cuda::fail(APR_ERR_INVALID_ARGUMENT, "device_caps: caps is NULL");
    if (index >= apr_cuda::device_count())
      apr_cuda::fail(APR_ERR_INVALID_ARGUMENT,
                     "device_caps: no CUDA device " + std::to_string(index));
    uint64_t types = 0;
    for (uint32_t t = 0; t < 64; ++t)
      if (apr_cuda::weight_type_supported(t)) types |= uint64_t{1} << t;
    APR_SDK_SET(caps, weight_types, types);
    APR_SDK_SET(caps, features, uint64_t{APR_FEATURE_ROPE_FREQ_FACTORS | APR_FEATURE_FUSED_TRACE});
    APR_SDK_SET(caps, max_buffer_bytes, uint64_t{0});
  });
}

apr_status api_weight_create(apr_device* device, const apr_weight_desc* desc, apr_weight** weight) {
  return guarded("weight_create", [&] {
    if (!device || !desc || !weight) {
      apr_cuda::fail(APR_ERR_INVALID_ARGUMENT, "weight_create: NULL argument");
    }
    *weight = nullptr;
    *weight = apr_cuda::weight_create(*device, *desc);
  });
}

void api_weight_free(apr_device* device, apr_weight* weight) {
  if (!device) return;
  try {
    apr_cuda::weight_free(*device, weight);
  } catch (...) {
  }
}

apr_status api_embed(apr_device* d, const apr_embed_args* a) {
  return kernel_call("embed", d, a, apr_cuda::embed);
}
apr_status api_rms_norm(apr_device* d, const apr_rms_norm_args* a) {
  return kernel_call("rms_norm", d, a, apr_cuda::rms_norm);
}
apr_status api_matmul(apr_device* d, const apr_matmul_args* a) {
  return kernel_call("matmul", d, a, apr_cuda::matmul);
}
apr_status api_add(apr_device* d, const apr_add_args* a) {
  return kernel_call("add", d, a, apr_cuda::add);
}
apr_status api_rope(apr_device* d, const apr_rope_args* a) {
  return kernel_call("rope", d, a, apr_cuda::rope);
}
apr_status api_kv_store(apr_device* d, const apr_kv_store_args* a) {
  return kernel_call("kv_store", d, a, apr_cuda::kv_store);
}
apr_status api_attention(apr_device* d, const apr_attention_args* a) {
  return kernel_call("attention", d, a, apr_cuda::attention);
}
apr_status api_swiglu(apr_device* d, const apr_swiglu_args* a) {
  return kernel_call("swiglu", d, a, apr_cuda::swiglu);
}
apr_status api_trace_emit(apr_device* d, const apr_trace_emit_args* a) {
  return kernel_call("trace_emit", d, a, apr_cuda::trace_emit);
}

const apr_plugin_api kApi = {
    sizeof(apr_plugin_api),
    APR_ABI_MAJOR,
    APR_ABI_MINOR,
    "cuda",
    "0.1.0",
    "NVIDIA GPUs through the CUDA runtime (statically linked; needs only the driver)",
    nullptr,
    api_init,
    api_shutdown,
    api_probe,
    api_error_message,
    api_device_count,
    api_device_info,
    api_device_open,
    api_device_close,
    api_set_trace_sink,
    api_buffer_alloc,
    api_buffer_free,
    api_buffer_write,
    api_buffer_read,
    api_synchronize,
    api_weight_create,
    api_weight_free,
    api_embed,
    api_rms_norm,
    api_matmul,
    api_add,
    api_rope,
    api_kv_store,
    api_attention,
    api_swiglu,
    api_trace_emit,
    api_device_caps,
    nullptr,  // step_begin: kernels run eagerly for now
    nullptr,  // step_end
};

}  // namespace

extern "C" APR_PLUGIN_EXPORT const apr_plugin_api* apr_plugin_entry(uint32_t host_abi_major,
                                                                    uint32_t host_abi_minor) {
  (void)host_abi_minor;  // every 1.x host can read the 1.0 table
  return host_abi_major == APR_ABI_MAJOR ? &kApi : nullptr;
}
