// SPDX-License-Identifier: MIT
// The plugin table: lifecycle, probe, devices, buffers and weights, and the C wrappers around the
// kernels. Nothing thrown inside ever crosses this boundary.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <type_traits>

#include "arg_checks.hpp"
#include "device.hpp"
#include "fault_injection.hpp"
#include "kernels.hpp"
#include "status.hpp"

#ifndef APR_CPU_PLUGIN_NAME
#define APR_CPU_PLUGIN_NAME "cpu"
#endif
#ifndef APR_CPU_PLUGIN_VERSION
#define APR_CPU_PLUGIN_VERSION "0.1.0"
#endif

namespace apr_cpu {
namespace {

apr_host g_host{};
bool g_has_host = false;

void log_message(int32_t level, const std::string& message) {
  if (g_has_host && g_host.log) g_host.log(g_host.user_data, level, message.c_str());
}

const char* isa_override() {
  return std::getenv("APR_CPU_ISA");
}

std::string cpu_model_name() {
  std::FILE* f = std::fopen("/proc/cpuinfo", "r");
  if (!f) return "CPU";
  char line[512];
  std::string name = "CPU";
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, "model name", 10) == 0) {
      const char* colon = std::strchr(line, ':');
      if (colon) {
        name = colon + 1;
        while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.erase(0, 1);
        while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
      }
      break;
    }
  }
  std::fclose(f);
  return name;
}

uint64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<uint64_t>(pages) * page_size : 0;
}

apr_status api_init(const apr_host* host) {
  return guarded("init", [&] {
    const apr_host copy = apr_sdk::copy_host(host);
    if (copy.abi_major != APR_ABI_MAJOR)
      fail(APR_ERR_UNSUPPORTED,
           "host ABI major " + num(copy.abi_major) + " is not " + num(APR_ABI_MAJOR));
    g_host = copy;
    g_has_host = true;
  });
}

void api_shutdown() {
  g_has_host = false;
  g_host = apr_host{};
}

apr_status api_probe(apr_probe_result* result) {
  return guarded("probe", [&] {
    if (!result) invalid("result is NULL");
    const IsaKernels& k = select_isa_kernels(isa_override());
    APR_SDK_SET(result, score, 10u);
    APR_SDK_SET_STRING(
        result, reason,
        num(std::thread::hardware_concurrency()) + " hardware threads, " + k.name + " kernels");
  });
}

const char* api_error_message() {
  return last_error();
}

uint32_t api_device_count() {
  return 1;
}

apr_status api_device_info(uint32_t index, apr_device_info* info) {
  return guarded("device_info", [&] {
    if (!info) invalid("info is NULL");
    if (index != 0) invalid("device index " + num(index) + " is not 0");
    const IsaKernels& k = select_isa_kernels(isa_override());
    APR_SDK_SET(info, kind, uint32_t{APR_DEVICE_KIND_CPU});
    APR_SDK_SET(info, memory_bytes, physical_memory_bytes());
    APR_SDK_SET_STRING(info, name, cpu_model_name());
    APR_SDK_SET_STRING(info, description,
                       std::string(k.name) + " kernels, " +
                           (k.packed_gemm_q16 ? "16-bit activations on quantized weights (default)"
                                              : "f32 activations") +
                           ", " + num(std::thread::hardware_concurrency()) + " hardware threads");
  });
}

apr_status api_device_open(uint32_t index, const apr_device_options* options, apr_device** device) {
  return guarded("device_open", [&] {
    if (!device) invalid("device is NULL");
    *device = nullptr;
    if (index != 0) invalid("device index " + num(index) + " is not 0");
    unsigned n_threads = 0;
    if (options) n_threads = apr_sdk::checked_args(options, "apr_device_options").n_threads;
    if (n_threads > 1024) invalid("n_threads " + num(n_threads) + " is absurd");
    fault::configure_from_environment();
    const IsaKernels& k = select_isa_kernels(isa_override());
    auto* d = new apr_device(n_threads, k);
    log_message(APR_LOG_INFO,
                std::string("cpu: ") + num(d->pool.size()) + " threads, " + k.name + " kernels");
    *device = d;
  });
}

void api_device_close(apr_device* device) {
  delete device;
}

apr_status api_set_trace_sink(apr_device* device, const apr_trace_sink* sink) {
  return guarded("set_trace_sink", [&] {
    if (!device) invalid("device is NULL");
    device->trace.set(sink);
  });
}

apr_status api_buffer_alloc(apr_device* device, uint64_t nbytes, apr_buffer** buffer) {
  return guarded("buffer_alloc", [&] {
    if (!device) invalid("device is NULL");
    if (!buffer) invalid("buffer is NULL");
    *buffer = nullptr;
    // Rounded up to the alignment (and never 0) so aligned_alloc's size rule holds.
    if (nbytes > (uint64_t{1} << 48))
      fail(APR_ERR_OUT_OF_MEMORY, num(nbytes) + " bytes is too large");
    const uint64_t rounded = (nbytes + 255) / 256 * 256 + (nbytes == 0 ? 256 : 0);
    void* p = std::aligned_alloc(256, rounded);
    if (!p) fail(APR_ERR_OUT_OF_MEMORY, "cannot allocate " + num(nbytes) + " bytes");
    std::memset(p, 0, rounded);
    auto* b = new (std::nothrow) apr_buffer;
    if (!b) {
      std::free(p);
      fail(APR_ERR_OUT_OF_MEMORY, "cannot allocate a buffer object");
    }
    b->data = static_cast<uint8_t*>(p);
    b->size = nbytes;
    *buffer = b;
  });
}

void api_buffer_free(apr_device*, apr_buffer* buffer) {
  if (!buffer) return;
  std::free(buffer->data);
  delete buffer;
}

void check_range(const apr_buffer* buffer, uint64_t offset, uint64_t nbytes) {
  if (!buffer) invalid("buffer is NULL");
  uint64_t end;
  if (__builtin_add_overflow(offset, nbytes, &end) || end > buffer->size)
    invalid("range [" + num(offset) + ", +" + num(nbytes) + ") lies outside the buffer of " +
            num(buffer->size) + " bytes");
}

apr_status api_buffer_write(apr_device* device, apr_buffer* buffer, uint64_t offset,
                            const void* src, uint64_t nbytes) {
  return guarded("buffer_write", [&] {
    if (!device) invalid("device is NULL");
    check_range(buffer, offset, nbytes);
    if (nbytes == 0) return;
    if (!src) invalid("src is NULL");
    std::memcpy(buffer->data + offset, src, nbytes);
  });
}

apr_status api_buffer_read(apr_device* device, const apr_buffer* buffer, uint64_t offset, void* dst,
                           uint64_t nbytes) {
  return guarded("buffer_read", [&] {
    if (!device) invalid("device is NULL");
    check_range(buffer, offset, nbytes);
    if (nbytes == 0) return;
    if (!dst) invalid("dst is NULL");
    std::memcpy(dst, buffer->data + offset, nbytes);
  });
}

apr_status api_synchronize(apr_device* device) {
  return guarded("synchronize", [&] {
    if (!device) invalid("device is NULL");
  });
}

apr_status api_weight_create(apr_device* device, const apr_weight_desc* desc, apr_weight** weight) {
  return guarded("weight_create", [&] {
    if (!device) invalid("device is NULL");
    if (!weight) invalid("weight is NULL");
    *weight = nullptr;
    const apr_weight_desc& d = checked_args(device, desc, "apr_weight_desc");
    const std::string name = d.name ? d.name : "(unnamed)";
    const WeightFormat* format = find_weight_format(d.type);
    if (!format)
      fail(APR_ERR_UNSUPPORTED, "tensor '" + name + "': weight type " + weight_type_name(d.type) +
                                    " (" + num(d.type) + ") is not supported by the cpu plugin");
    if (d.n_cols == 0 || d.n_rows == 0) invalid("tensor '" + name + "': empty shape");
    if (d.n_cols % format->block_elems != 0)
      invalid("tensor '" + name + "': n_cols " + num(d.n_cols) + " is not a multiple of the " +
              format->name + " block size " + num(format->block_elems));
    if (d.n_cols > 0xFFFFFFFFu) invalid("tensor '" + name + "': n_cols exceeds 2^32 - 1");
    const uint64_t row_bytes = d.n_cols / format->block_elems * format->block_bytes;
    uint64_t total;
    if (__builtin_mul_overflow(row_bytes, d.n_rows, &total) || total != d.nbytes)
      invalid("tensor '" + name + "': nbytes " + num(d.nbytes) + " is not n_rows " + num(d.n_rows) +
              " x row bytes " + num(row_bytes));
    if (!d.data) invalid("tensor '" + name + "': data is NULL");
    auto w = std::make_unique<apr_weight>();
    w->format = format;
    w->n_cols = d.n_cols;
    w->n_rows = d.n_rows;
    w->row_bytes = row_bytes;
    w->name = name;
    // F32 rows are read as floats, so they need 4-byte alignment; otherwise reference in place.
    const bool aligned = reinterpret_cast<uintptr_t>(d.data) % 4 == 0;
    if ((d.flags & APR_WEIGHT_DATA_PERSISTENT) && aligned) {
      w->data = static_cast<const uint8_t*>(d.data);
    } else {
      w->owned.reset(new uint8_t[total]);
      std::memcpy(w->owned.get(), d.data, total);
      w->data = w->owned.get();
    }
    // Repacked for the integer kernels unless every product is to stay in f32 (APR_CPU_ACT=f32,
    // read here and at every matmul: weights created under f32 keep the f32 path).
    const char* act = std::getenv("APR_CPU_ACT");
    const bool f32_only = act && std::strcmp(act, "f32") == 0;
    if (device->kernels.packed_gemm_q16 && packable(d.type) && !f32_only)
      w->packed = pack_weight(d.type, w->data, w->n_rows, w->n_cols, w->row_bytes, device->pool);
    *weight = w.release();
  });
}

void api_weight_free(apr_device*, apr_weight* weight) {
  delete weight;
}

#define APR_CPU_KERNEL(fn, Args, runner)                                              \
  apr_status api_##fn(apr_device* device, const Args* args) {                         \
    return guarded(#fn, [&] { runner(*device, checked_args(device, args, #Args)); }); \
  }

APR_CPU_KERNEL(embed, apr_embed_args, run_embed)
APR_CPU_KERNEL(rms_norm, apr_rms_norm_args, run_rms_norm)
APR_CPU_KERNEL(matmul, apr_matmul_args, run_matmul)
APR_CPU_KERNEL(add, apr_add_args, run_add)
APR_CPU_KERNEL(rope, apr_rope_args, run_rope)
APR_CPU_KERNEL(kv_store, apr_kv_store_args, run_kv_store)
APR_CPU_KERNEL(attention, apr_attention_args, run_attention)
APR_CPU_KERNEL(swiglu, apr_swiglu_args, run_swiglu)
APR_CPU_KERNEL(trace_emit, apr_trace_emit_args, run_trace_emit)

apr_status api_device_caps(uint32_t index, apr_device_caps* caps) {
  return guarded("device_caps", [&] {
    if (!caps) invalid("caps is NULL");
    if (index != 0) invalid("device index " + num(index) + " is not 0");
    uint64_t types = 0;
    for (apr_type t = 0; t < 64; ++t)
      if (find_weight_format(t)) types |= uint64_t{1} << t;
    APR_SDK_SET(caps, weight_types, types);
    APR_SDK_SET(caps, features, uint64_t{APR_FEATURE_ROPE_FREQ_FACTORS | APR_FEATURE_FUSED_TRACE});
    APR_SDK_SET(caps, max_buffer_bytes, uint64_t{1} << 48);
  });
}

// Kernels run eagerly, so the step markers only check their arguments (plugin.h allows a plugin
// to ignore them); they exist so the conformance suite exercises the host's side of the protocol.
apr_status api_step_marker(apr_device* device, const apr_step_args* args, const char* call) {
  return guarded(call, [&] {
    if (!device) invalid("device is NULL");
    const apr_step_args& a = apr_sdk::checked_args(args, "apr_step_args");
    if (!(a.flags & APR_STEP_DISCARD))
      check_range(a.scalars, a.scalars_offset, APR_STEP_SCALARS_BYTES(a.n_rows));
  });
}
apr_status api_step_begin(apr_device* device, const apr_step_args* args) {
  return api_step_marker(device, args, "step_begin");
}
apr_status api_step_end(apr_device* device, const apr_step_args* args) {
  return api_step_marker(device, args, "step_end");
}

const apr_plugin_api kApi = {
    .struct_size = sizeof(apr_plugin_api),
    .abi_major = APR_ABI_MAJOR,
    .abi_minor = APR_ABI_MINOR,
    .name = APR_CPU_PLUGIN_NAME,
    .version = APR_CPU_PLUGIN_VERSION,
    .description = "CPU backend: 13 ggml weight types, integer kernels on repacked weights",
    .aliases = nullptr,
    .init = api_init,
    .shutdown = api_shutdown,
    .probe = api_probe,
    .error_message = api_error_message,
    .device_count = api_device_count,
    .device_info = api_device_info,
    .device_open = api_device_open,
    .device_close = api_device_close,
    .set_trace_sink = api_set_trace_sink,
    .buffer_alloc = api_buffer_alloc,
    .buffer_free = api_buffer_free,
    .buffer_write = api_buffer_write,
    .buffer_read = api_buffer_read,
    .synchronize = api_synchronize,
    .weight_create = api_weight_create,
    .weight_free = api_weight_free,
    .embed = api_embed,
    .rms_norm = api_rms_norm,
    .matmul = api_matmul,
    .add = api_add,
    .rope = api_rope,
    .kv_store = api_kv_store,
    .attention = api_attention,
    .swiglu = api_swiglu,
    .trace_emit = api_trace_emit,
    .device_caps = api_device_caps,
    .step_begin = api_step_begin,
    .step_end = api_step_end,
};

}  // namespace
}  // namespace apr_cpu

extern "C" APR_PLUGIN_EXPORT const apr_plugin_api* apr_plugin_entry(uint32_t host_abi_major,
                                                                    uint32_t /*host_abi_minor*/) {
  if (host_abi_major != APR_ABI_MAJOR) return nullptr;
  return &apr_cpu::kApi;
}
