// SPDX-License-Identifier: MIT
#include "cuda_backend.hpp"

#include <apr/plugin_sdk.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

namespace apr_cuda {
namespace {

// A copy of the host's services (apr_sdk::copy_host): members its struct_size lacks read as NULL.
apr_host g_host_copy{};
const apr_host* g_host = nullptr;

constexpr uint64_t kF32 = sizeof(float);
constexpr uint32_t kMaxGridY = 65535;

std::string type_name(uint32_t type) {
  switch (type) {
    case APR_TYPE_F32:
      return "F32";
    case APR_TYPE_F16:
      return "F16";
    case APR_TYPE_BF16:
      return "BF16";
    case APR_TYPE_Q4_0:
      return "Q4_0";
    case APR_TYPE_Q4_1:
      return "Q4_1";
    case APR_TYPE_Q5_0:
      return "Q5_0";
    case APR_TYPE_Q5_1:
      return "Q5_1";
    case APR_TYPE_Q8_0:
      return "Q8_0";
    case APR_TYPE_Q2_K:
      return "Q2_K";
    case APR_TYPE_Q3_K:
      return "Q3_K";
    case APR_TYPE_Q4_K:
      return "Q4_K";
    case APR_TYPE_Q5_K:
      return "Q5_K";
    case APR_TYPE_Q6_K:
      return "Q6_K";
    default:
      return "type " + std::to_string(type);
  }
}

// a * b, or a failure naming `what` when it does not fit in 64 bits.
uint64_t checked_mul(uint64_t a, uint64_t b, const char* what) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) {
    fail(APR_ERR_INVALID_ARGUMENT, std::string(what) + ": size overflows 64 bits");
  }
  return a * b;
}

// Bytes spanned by n_rows rows of n_cols f32 placed `stride` elements apart.
uint64_t view_bytes(uint64_t n_rows, uint64_t n_cols, uint64_t stride, const char* what) {
  if (n_rows == 0 || n_cols == 0) return 0;
  if (stride < n_cols) {
    fail(APR_ERR_INVALID_ARGUMENT, std::string(what) + ": row stride " + std::to_string(stride) +
                                       " is smaller than the row length " + std::to_string(n_cols));
  }
  const uint64_t elems = checked_mul(n_rows - 1, stride, what) + n_cols;
  return checked_mul(elems, kF32, what);
}

// Device address of [offset, offset + nbytes) of buffer, after checking it lies inside.
template <typename Buffer>
float* span(Buffer* buffer, uint64_t offset, uint64_t nbytes, const char* what) {
  if (!buffer) fail(APR_ERR_INVALID_ARGUMENT, std::string(what) + ": buffer is NULL");
  if (offset % 4 != 0) {
    fail(APR_ERR_INVALID_ARGUMENT,
         std::string(what) + ": offset " + std::to_string(offset) + " is not a multiple of 4");
  }
  if (offset > buffer->size || nbytes > buffer->size - offset) {
    fail(APR_ERR_INVALID_ARGUMENT, std::string(what) + ": bytes [" + std::to_string(offset) + ", " +
                                       std::to_string(offset) + "+" + std::to_string(nbytes) +
                                       ") exceed the buffer size " + std::to_string(buffer->size));
  }
  return reinterpret_cast<float*>(static_cast<char*>(buffer->ptr) + offset);
}

// The least struct_size a 1.x host sends is the struct's ABI 1.0 size (plugin.h's *_SIZE_V1_0,
// never sizeof); members appended later are read only after APR_STRUCT_HAS.
template <typename Args>
void check_struct(const Args& a, const char* call) {
  if (a.struct_size < apr_sdk::min_size<Args>::value) {
    fail(APR_ERR_INVALID_ARGUMENT, std::string(call) + ": struct_size " +
                                       std::to_string(a.struct_size) + " is smaller than " +
                                       std::to_string(apr_sdk::min_size<Args>::value));
  }
}

void check_launch(cudaError_t err, const char* kernel) {
  check_cuda(err, std::string("launching ") + kernel);
}

void select(const apr_device& dev) {
  check_cuda(cudaSetDevice(dev.ordinal), "cudaSetDevice");
}

void grow_device(GrowBuffer& b, uint64_t nbytes, const char* what) {
  if (b.size >= nbytes) return;
  if (b.ptr) check_cuda(cudaFree(b.ptr), what);  // cudaFree waits for work that may use it
  b = {};
  check_cuda(cudaMalloc(&b.ptr, nbytes), what);
  b.size = nbytes;
}

void grow_pinned(GrowBuffer& b, uint64_t nbytes, const char* what) {
  if (b.size >= nbytes) return;
  if (b.ptr) check_cuda(cudaFreeHost(b.ptr), what);
  b = {};
  check_cuda(cudaMallocHost(&b.ptr, nbytes), what);
  b.size = nbytes;
}

bool wants(const apr_device& dev, apr_stage stage, uint32_t layer) {
  return dev.has_sink && dev.sink.wants && dev.sink.wants(dev.sink.user_data, stage, layer) != 0;
}

// Copies n_rows rows of n_cols f32 (stride elements apart) into pinned staging, waits, and hands
// the tensor to the sink. Only the requested view travels.
void emit_view(apr_device& dev, apr_stage stage, uint32_t layer, const float* src, uint64_t n_rows,
               uint64_t n_cols, uint64_t stride, uint32_t ndim, const uint64_t (&shape)[4]) {
  const uint64_t nbytes = checked_mul(checked_mul(n_rows, n_cols, "trace"), kF32, "trace");
  if (nbytes > 0) {
    grow_pinned(dev.trace_staging, nbytes, "allocating trace staging");
    // A packed view is one plain copy; 2-D copies are kept for strided views, whose pitch is
    // bounded by the device's maximum pitch.
    const cudaError_t err =
        stride == n_cols || n_rows == 1
            ? cudaMemcpyAsync(dev.trace_staging.ptr, src, nbytes, cudaMemcpyDeviceToHost,
                              dev.stream)
            : cudaMemcpy2DAsync(dev.trace_staging.ptr, n_cols * kF32, src, stride * kF32,
                                n_cols * kF32, n_rows, cudaMemcpyDeviceToHost, dev.stream);
    check_cuda(err, "copying a trace tensor");
  }
  check_cuda(cudaStreamSynchronize(dev.stream), "waiting for a trace tensor");
  apr_trace_tensor t{};
  t.struct_size = sizeof(t);
  t.stage = stage;
  t.layer = layer;
  t.dtype = APR_TYPE_F32;
  t.ndim = ndim;
  std::copy(std::begin(shape), std::end(shape), t.shape);
  t.data = dev.trace_staging.ptr;
  t.nbytes = nbytes;
  if (!dev.sink.emit || dev.sink.emit(dev.sink.user_data, &t) != APR_OK) {
    fail(APR_ERR_ABORTED, "trace sink stopped the run at stage " + std::to_string(stage) +
                              ", layer " + std::to_string(layer));
  }
}

}  // namespace

void copy_truncated(char* dst, size_t size, const char* src) {
  if (size == 0) return;
  const size_t n = std::min(std::strlen(src), size - 1);
  std::memcpy(dst, src, n);
  dst[n] = '\0';
}

void fail(apr_status status, std::string message) {
  throw Failure{status, std::move(message)};
}

void check_cuda(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so the next launch check is not misled
  const apr_status status =
      err == cudaErrorMemoryAllocation ? APR_ERR_OUT_OF_MEMORY : APR_ERR_DEVICE;
  fail(status, what + ": " + cudaGetErrorString(err));
}

void set_host(const apr_host* host) {
  if (!host) {
    g_host = nullptr;
    return;
  }
  try {
    g_host_copy = apr_sdk::copy_host(host);
  } catch (const apr_sdk::Failure& f) {
    fail(f.status(), std::string("init: ") + f.what());
  }
  g_host = &g_host_copy;
}

void log_message(int32_t level, const std::string& message) {
  if (g_host && g_host->log) {
    g_host->log(g_host->user_data, level, message.c_str());
  }
}

uint32_t device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return static_cast<uint32_t>(n);
}

void device_info(uint32_t index, apr_device_info* info) {
  if (!info) fail(APR_ERR_INVALID_ARGUMENT, "device_info: info is NULL");
  if (index >= device_count()) {
    fail(APR_ERR_INVALID_ARGUMENT, "device_info: no CUDA device " + std::to_string(index));
  }
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, static_cast<int>(index)), "cudaGetDeviceProperties");
  int driver = 0, runtime = 0;
  (void)cudaDriverGetVersion(&driver);
  (void)cudaRuntimeGetVersion(&runtime);
  const std::string description =
      "CUDA sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
      std::to_string(prop.multiProcessorCount) + " SMs, driver " + std::to_string(driver / 1000) +
      "." + std::to_string(driver % 1000 / 10) + ", runtime " + std::to_string(runtime / 1000) +
      "." + std::to_string(runtime % 1000 / 10) +
      (prop.major < kMinComputeMajor ? ", unsupported: this build needs sm_80 or newer" : "");
  APR_SDK_SET(
      info, kind,
      uint32_t(prop.integrated ? APR_DEVICE_KIND_INTEGRATED_GPU : APR_DEVICE_KIND_DISCRETE_GPU));
  APR_SDK_SET(info, memory_bytes, uint64_t(prop.totalGlobalMem));
  APR_SDK_SET_STRING(info, name, prop.name);
  APR_SDK_SET_STRING(info, description, description);
}

apr_device* device_open(uint32_t index) {
  if (index >= device_count()) {
    fail(APR_ERR_INVALID_ARGUMENT, "device_open: no CUDA device " + std::to_string(index));
  }
  cudaDeviceProp prop{};
  check_cuda(cudaGetDeviceProperties(&prop, static_cast<int>(index)), "cudaGetDeviceProperties");
  if (prop.major < kMinComputeMajor) {
    fail(APR_ERR_UNSUPPORTED, std::string("device_open: ") + prop.name + " is sm_" +
                                  std::to_string(prop.major) + std::to_string(prop.minor) +
                                  "; this build of the cuda plugin needs sm_80 or newer");
  }
  auto dev = std::make_unique<apr_device>();
  dev->ordinal = static_cast<int>(index);
  select(*dev);
  check_cuda(cudaStreamCreateWithFlags(&dev->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  const cudaError_t err = cudaEventCreateWithFlags(&dev->ids_copied, cudaEventDisableTiming);
  if (err != cudaSuccess) {
    (void)cudaStreamDestroy(dev->stream);
    check_cuda(err, "cudaEventCreate");
  }
  log_message(APR_LOG_INFO,
              std::string("cuda: opened device ") + std::to_string(index) + " (" + prop.name + ")");
  return dev.release();
}

void device_close(apr_device* dev) {
  if (!dev) return;
  std::unique_ptr<apr_device> owned(dev);
  // Teardown never throws: errors here can only be logged.
  if (cudaSetDevice(dev->ordinal) != cudaSuccess ||
      cudaStreamSynchronize(dev->stream) != cudaSuccess) {
    log_message(APR_LOG_WARN, "cuda: device_close: the device reported an error");
  }
  if (dev->trace_scratch.ptr) (void)cudaFree(dev->trace_scratch.ptr);
  if (dev->ids_device.ptr) (void)cudaFree(dev->ids_device.ptr);
  if (dev->trace_staging.ptr) (void)cudaFreeHost(dev->trace_staging.ptr);
  if (dev->ids_staging.ptr) (void)cudaFreeHost(dev->ids_staging.ptr);
  if (dev->ids_copied) (void)cudaEventDestroy(dev->ids_copied);
  if (dev->stream) (void)cudaStreamDestroy(dev->stream);
  (void)cudaGetLastError();
}

void set_trace_sink(apr_device& dev, const apr_trace_sink* sink) {
  if (!sink) {
    dev.has_sink = false;
    dev.sink = {};
    return;
  }
  if (sink->struct_size < APR_TRACE_SINK_SIZE_V1_0) {
    fail(APR_ERR_INVALID_ARGUMENT, "set_trace_sink: struct_size too small");
  }
  if (!sink->wants || !sink->emit) {
    fail(APR_ERR_INVALID_ARGUMENT, "set_trace_sink: wants and emit must both be set");
  }
  dev.sink = apr_trace_sink{};
  std::memcpy(&dev.sink, sink, APR_TRACE_SINK_SIZE_V1_0);
  dev.sink.struct_size = sizeof(apr_trace_sink);
  dev.has_sink = true;
}

apr_buffer* buffer_alloc(apr_device& dev, uint64_t nbytes) {
  select(dev);
  auto buffer = std::make_unique<apr_buffer>();
  // cudaMalloc returns 256-byte aligned memory; a zero-byte request still gets a real pointer.
  check_cuda(cudaMalloc(&buffer->ptr, std::max<uint64_t>(nbytes, 1)),
             "allocating a device buffer of " + std::to_string(nbytes) + " bytes");
  buffer->size = nbytes;
  return buffer.release();
}

void buffer_free(apr_device& dev, apr_buffer* buffer) {
  if (!buffer) return;
  std::unique_ptr<apr_buffer> owned(buffer);
  if (cudaSetDevice(dev.ordinal) != cudaSuccess || cudaFree(buffer->ptr) != cudaSuccess) {
    (void)cudaGetLastError();
    log_message(APR_LOG_WARN, "cuda: buffer_free: cudaFree failed");
  }
}

void buffer_write(apr_device& dev, apr_buffer* buffer, uint64_t offset, const void* src,
                  uint64_t nbytes) {
  select(dev);
  if (nbytes == 0) return;
  if (!src) fail(APR_ERR_INVALID_ARGUMENT, "buffer_write: src is NULL");
  if (!buffer) fail(APR_ERR_INVALID_ARGUMENT, "buffer_write: buffer is NULL");
  if (offset > buffer->size || nbytes > buffer->size - offset) {
    fail(APR_ERR_INVALID_ARGUMENT, "buffer_write: bytes [" + std::to_string(offset) + ", +" +
                                       std::to_string(nbytes) + ") exceed the buffer size " +
                                       std::to_string(buffer->size));
  }
  // Ordered after earlier kernels on the stream; the wait keeps the promise that src is read
  // before the call returns even if the host's memory happens to be pinned.
  check_cuda(cudaMemcpyAsync(static_cast<char*>(buffer->ptr) + offset, src, nbytes,
                             cudaMemcpyHostToDevice, dev.stream),
             "buffer_write");
  check_cuda(cudaStreamSynchronize(dev.stream), "buffer_write");
}

void buffer_read(apr_device& dev, const apr_buffer* buffer, uint64_t offset, void* dst,
                 uint64_t nbytes) {
  select(dev);
  if (nbytes > 0) {
    if (!dst) fail(APR_ERR_INVALID_ARGUMENT, "buffer_read: dst is NULL");
    if (!buffer) fail(APR_ERR_INVALID_ARGUMENT, "buffer_read: buffer is NULL");
    if (offset > buffer->size || nbytes > buffer->size - offset) {
      fail(APR_ERR_INVALID_ARGUMENT, "buffer_read: bytes [" + std::to_string(offset) + ", +" +
                                         std::to_string(nbytes) + ") exceed the buffer size " +
                                         std::to_string(buffer->size));
    }
    check_cuda(cudaMemcpyAsync(dst, static_cast<const char*>(buffer->ptr) + offset, nbytes,
                               cudaMemcpyDeviceToHost, dev.stream),
               "buffer_read");
  }
  check_cuda(cudaStreamSynchronize(dev.stream), "buffer_read");
}

void synchronize(apr_device& dev) {
  select(dev);
  check_cuda(cudaStreamSynchronize(dev.stream), "synchronize");
}

apr_weight* weight_create(apr_device& dev, const apr_weight_desc& desc) {
  check_struct(desc, "weight_create");
  const std::string name = desc.name ? desc.name : "(unnamed)";
  const std::string where = "weight '" + name + "'";
  if (!weight_type_supported(desc.type)) {
    fail(APR_ERR_UNSUPPORTED, where + ": the cuda plugin cannot decode " + type_name(desc.type));
  }
  const uint32_t blk = weight_block_elems(desc.type);
  if (desc.n_cols % blk != 0) {
    fail(APR_ERR_INVALID_ARGUMENT, where + ": n_cols " + std::to_string(desc.n_cols) +
                                       " is not a multiple of the " + type_name(desc.type) +
                                       " block size " + std::to_string(blk));
  }
  const uint64_t row_bytes =
      checked_mul(desc.n_cols / blk, weight_block_bytes(desc.type), where.c_str());
  const uint64_t total = checked_mul(row_bytes, desc.n_rows, where.c_str());
  if (desc.nbytes != total) {
    fail(APR_ERR_INVALID_ARGUMENT,
         where + ": nbytes " + std::to_string(desc.nbytes) + " but " + std::to_string(desc.n_rows) +
             " rows of " + std::to_string(row_bytes) + " bytes need " + std::to_string(total));
  }
  if (total > 0 && !desc.data) fail(APR_ERR_INVALID_ARGUMENT, where + ": data is NULL");
  select(dev);
  auto weight = std::make_unique<apr_weight>();
  weight->name = name;
  void* ptr = nullptr;
  check_cuda(cudaMalloc(&ptr, std::max<uint64_t>(total, 1)),
             "allocating " + std::to_string(total) + " bytes for " + where);
  weight->device = DeviceWeight{desc.type, desc.n_rows, desc.n_cols, row_bytes,
                                static_cast<const uint8_t*>(ptr)};
  // Uploaded once in its GGUF blocks; the wait lets the host drop non-persistent data at once.
  cudaError_t err = cudaSuccess;
  if (total > 0) {
    err = cudaMemcpyAsync(ptr, desc.data, total, cudaMemcpyHostToDevice, dev.stream);
    if (err == cudaSuccess) err = cudaStreamSynchronize(dev.stream);
  }
  if (err != cudaSuccess) {
    (void)cudaFree(ptr);
    check_cuda(err, "uploading " + where);
  }
  return weight.release();
}

void weight_free(apr_device& dev, apr_weight* weight) {
  if (!weight) return;
  std::unique_ptr<apr_weight> owned(weight);
  if (cudaSetDevice(dev.ordinal) != cudaSuccess ||
      cudaFree(const_cast<uint8_t*>(weight->device.data)) != cudaSuccess) {
    (void)cudaGetLastError();
    log_message(APR_LOG_WARN, "cuda: weight_free: cudaFree failed for " + weight->name);
  }
}

void embed(apr_device& dev, const apr_embed_args& a) {
  check_struct(a, "embed");
  if (!a.table) fail(APR_ERR_INVALID_ARGUMENT, "embed: table is NULL");
  const DeviceWeight& w = a.table->device;
  if (a.n_rows == 0) return;
  if (!a.token_ids) fail(APR_ERR_INVALID_ARGUMENT, "embed: token_ids is NULL");
  if (a.n_rows > kMaxGridY) {
    fail(APR_ERR_UNSUPPORTED, "embed: " + std::to_string(a.n_rows) + " rows in one call (at most " +
                                  std::to_string(kMaxGridY) + ")");
  }
  for (uint32_t r = 0; r < a.n_rows; ++r) {
    const int32_t id = a.token_ids[r];
    if (id < 0 || static_cast<uint64_t>(id) >= w.n_rows) {
      fail(APR_ERR_INVALID_ARGUMENT, "embed: token id " + std::to_string(id) + " at row " +
                                         std::to_string(r) + " is outside '" + a.table->name +
                                         "' (" + std::to_string(w.n_rows) + " rows)");
    }
  }
  float* out =
      span(a.out, a.out_offset, view_bytes(a.n_rows, w.n_cols, w.n_cols, "embed out"), "embed out");
  select(dev);
  const uint64_t id_bytes = uint64_t{a.n_rows} * sizeof(int32_t);
  // The pinned staging may still feed the previous call's copy; wait for that copy only.
  check_cuda(cudaEventSynchronize(dev.ids_copied), "embed: waiting for the previous token ids");
  grow_pinned(dev.ids_staging, id_bytes, "embed: allocating token id staging");
  grow_device(dev.ids_device, id_bytes, "embed: allocating device token ids");
  std::memcpy(dev.ids_staging.ptr, a.token_ids, id_bytes);
  check_cuda(cudaMemcpyAsync(dev.ids_device.ptr, dev.ids_staging.ptr, id_bytes,
                             cudaMemcpyHostToDevice, dev.stream),
             "embed: copying token ids");
  check_cuda(cudaEventRecord(dev.ids_copied, dev.stream), "embed: cudaEventRecord");
  check_launch(
      launch_embed(w, static_cast<const int32_t*>(dev.ids_device.ptr), a.n_rows, out, dev.stream),
      "embed");
}

void rms_norm(apr_device& dev, const apr_rms_norm_args& a) {
  check_struct(a, "rms_norm");
  const uint64_t bytes = view_bytes(a.n_rows, a.n_cols, a.n_cols, "rms_norm");
  const float* x = span(a.x, a.x_offset, bytes, "rms_norm x");
  const float* weight =
      span(a.weight, a.weight_offset, uint64_t{a.n_cols} * kF32, "rms_norm weight");
  float* out = span(a.out, a.out_offset, bytes, "rms_norm out");
  select(dev);
  check_launch(launch_rms_norm(x, weight, out, a.n_rows, a.n_cols, a.eps, dev.stream), "rms_norm");
}

void matmul(apr_device& dev, const apr_matmul_args& a) {
  check_struct(a, "matmul");
  if (!a.weight) fail(APR_ERR_INVALID_ARGUMENT, "matmul: weight is NULL");
  const DeviceWeight& w = a.weight->device;
  const std::string where = "matmul '" + a.weight->name + "'";
  if (w.n_cols > std::numeric_limits<uint32_t>::max() ||
      w.n_rows > std::numeric_limits<uint32_t>::max()) {
    fail(APR_ERR_UNSUPPORTED, where + ": matrix dimensions above 2^32");
  }
  const uint32_t x_stride = a.x_row_stride ? a.x_row_stride : static_cast<uint32_t>(w.n_cols);
  const uint32_t y_stride = a.y_row_stride ? a.y_row_stride : static_cast<uint32_t>(w.n_rows);
  const std::string x_what = where + " x", y_what = where + " y", b_what = where + " bias";
  const float* x = span(a.x, a.x_offset, view_bytes(a.n_rows, w.n_cols, x_stride, x_what.c_str()),
                        x_what.c_str());
  float* y = span(a.y, a.y_offset, view_bytes(a.n_rows, w.n_rows, y_stride, y_what.c_str()),
                  y_what.c_str());
  const float* bias =
      a.bias ? span(a.bias, a.bias_offset, w.n_rows * kF32, b_what.c_str()) : nullptr;
  if (a.n_rows > kMaxGridY * 64ull)
    fail(APR_ERR_UNSUPPORTED, where + ": too many rows in one call");
  select(dev);
  check_launch(launch_matmul(w, x, x_stride, a.n_rows, bias, y, y_stride, dev.stream),
               where.c_str());
}

void add(apr_device& dev, const apr_add_args& a) {
  check_struct(a, "add");
  const uint64_t period = a.b_period ? a.b_period : a.n;
  const float* x = span(a.a, a.a_offset, checked_mul(a.n, kF32, "add a"), "add a");
  const float* b =
      span(a.b, a.b_offset, checked_mul(a.n == 0 ? 0 : period, kF32, "add b"), "add b");
  float* out = span(a.out, a.out_offset, a.n * kF32, "add out");
  select(dev);
  check_launch(launch_add(x, b, out, a.n, period, dev.stream), "add");
}

void rope(apr_device& dev, const apr_rope_args& a) {
  check_struct(a, "rope");
  if (a.n_rot % 2 != 0 || a.n_rot > a.head_dim) {
    fail(APR_ERR_INVALID_ARGUMENT, "rope: n_rot " + std::to_string(a.n_rot) +
                                       " must be even and at most head_dim " +
                                       std::to_string(a.head_dim));
  }
  if (a.mode != APR_ROPE_INTERLEAVED && a.mode != APR_ROPE_HALF) {
    fail(APR_ERR_INVALID_ARGUMENT, "rope: unknown mode " + std::to_string(a.mode));
  }
  const uint64_t width = uint64_t{a.n_heads} * a.head_dim;
  if (width > std::numeric_limits<uint32_t>::max())
    fail(APR_ERR_INVALID_ARGUMENT, "rope: row too wide");
  const uint32_t stride = a.x_row_stride ? a.x_row_stride : static_cast<uint32_t>(width);
  float* x = span(a.x, a.x_offset, view_bytes(a.n_rows, width, stride, "rope x"), "rope x");
  RopeParams p{stride, a.n_rows,    a.n_heads,    a.head_dim, a.n_rot, a.mode,
               a.pos0, a.freq_base, a.freq_scale, 0,          {}};
  if (APR_STRUCT_HAS(&a, apr_rope_args, freq_factors) && a.freq_factors) {
    if (a.n_rot / 2 > kMaxRopePairs)
      fail(APR_ERR_UNSUPPORTED,
           "rope: freq_factors for more than " + std::to_string(kMaxRopePairs) + " pairs");
    for (uint32_t i = 0; i < a.n_rot / 2; ++i) {
      if (!(a.freq_factors[i] > 0.0f) || !std::isfinite(a.freq_factors[i]))
        fail(APR_ERR_INVALID_ARGUMENT,
             "rope: freq_factors[" + std::to_string(i) + "] must be positive and finite");
      p.freq_factors[i] = a.freq_factors[i];
    }
    p.has_factors = 1;
  }
  select(dev);
  check_launch(launch_rope(x, p, dev.stream), "rope");
}

void kv_store(apr_device& dev, const apr_kv_store_args& a) {
  check_struct(a, "kv_store");
  if (a.n_rows == 0 || a.kv_dim == 0) return;
  const uint32_t stride = a.src_row_stride ? a.src_row_stride : a.kv_dim;
  const float* k =
      span(a.k, a.k_offset, view_bytes(a.n_rows, a.kv_dim, stride, "kv_store k"), "kv_store k");
  const float* v =
      span(a.v, a.v_offset, view_bytes(a.n_rows, a.kv_dim, stride, "kv_store v"), "kv_store v");
  const uint64_t row_bytes = uint64_t{a.kv_dim} * kF32;
  const uint64_t first = uint64_t{a.pos0} * row_bytes;
  const uint64_t bytes = uint64_t{a.n_rows} * row_bytes;
  float* kc = span(a.k_cache, first, bytes, "kv_store k_cache (pos0 + n_rows past n_ctx?)");
  float* vc = span(a.v_cache, first, bytes, "kv_store v_cache (pos0 + n_rows past n_ctx?)");
  select(dev);
  check_cuda(cudaMemcpy2DAsync(kc, row_bytes, k, stride * kF32, row_bytes, a.n_rows,
                               cudaMemcpyDeviceToDevice, dev.stream),
             "kv_store k");
  check_cuda(cudaMemcpy2DAsync(vc, row_bytes, v, stride * kF32, row_bytes, a.n_rows,
                               cudaMemcpyDeviceToDevice, dev.stream),
             "kv_store v");
}

void attention(apr_device& dev, const apr_attention_args& a) {
  check_struct(a, "attention");
  if (a.n_heads == 0 || a.n_kv_heads == 0 || a.n_heads % a.n_kv_heads != 0) {
    fail(APR_ERR_INVALID_ARGUMENT, "attention: n_heads " + std::to_string(a.n_heads) +
                                       " is not a positive multiple of n_kv_heads " +
                                       std::to_string(a.n_kv_heads));
  }
  if (a.head_dim == 0 || a.head_dim > kMaxHeadDim) {
    fail(APR_ERR_UNSUPPORTED, "attention: head_dim " + std::to_string(a.head_dim) + " outside 1.." +
                                  std::to_string(kMaxHeadDim));
  }
  if (a.n_rows == 0) return;
  if (a.n_rows > kMaxGridY) fail(APR_ERR_UNSUPPORTED, "attention: too many rows in one call");
  const uint64_t width = uint64_t{a.n_heads} * a.head_dim;
  const uint64_t stride = a.q_row_stride ? a.q_row_stride : width;
  if (stride > std::numeric_limits<uint32_t>::max())
    fail(APR_ERR_INVALID_ARGUMENT, "attention: q row too wide");
  const uint64_t n_kv = uint64_t{a.pos0} + a.n_rows;
  const uint64_t kv_dim = uint64_t{a.n_kv_heads} * a.head_dim;
  const float* q =
      span(a.q, a.q_offset, view_bytes(a.n_rows, width, stride, "attention q"), "attention q");
  const float* kc = span(a.k_cache, 0, view_bytes(n_kv, kv_dim, kv_dim, "attention k_cache"),
                         "attention k_cache");
  const float* vc = span(a.v_cache, 0, view_bytes(n_kv, kv_dim, kv_dim, "attention v_cache"),
                         "attention v_cache");
  float* out = span(a.out, a.out_offset, view_bytes(a.n_rows, width, width, "attention out"),
                    "attention out");
  AttentionParams p{static_cast<uint32_t>(stride),
                    a.n_rows,
                    a.pos0,
                    a.n_heads,
                    a.n_kv_heads,
                    a.head_dim,
                    a.scale};
  select(dev);
  const bool want_scores = wants(dev, APR_STAGE_ATTN_SCORES, a.layer);
  const bool want_probs = wants(dev, APR_STAGE_ATTN_SOFTMAX, a.layer);
  if (want_scores || want_probs) {
    // The tracing rule: the emitted scores and probabilities must be the ones the output is
    // computed from, so a traced call materialises them and derives the output from them
    // instead of running the fused online-softmax kernel.
    const uint64_t count = checked_mul(uint64_t{a.n_heads} * a.n_rows, n_kv, "attention trace");
    grow_device(dev.trace_scratch, checked_mul(count, 2 * kF32, "attention trace"),
                "attention: allocating trace scratch");
    float* scores = static_cast<float*>(dev.trace_scratch.ptr);
    float* probs = scores + count;
    check_launch(launch_attention_probe(q, kc, p, scores, probs, dev.stream), "attention trace");
    check_launch(launch_attention_apply(probs, vc, out, p, dev.stream), "attention (traced)");
    const uint64_t shape[4] = {a.n_heads, a.n_rows, n_kv, 1};
    if (want_scores)
      emit_view(dev, APR_STAGE_ATTN_SCORES, a.layer, scores, 1, count, count, 3, shape);
    if (want_probs)
      emit_view(dev, APR_STAGE_ATTN_SOFTMAX, a.layer, probs, 1, count, count, 3, shape);
    return;
  }
  check_launch(launch_attention(q, kc, vc, out, p, dev.stream), "attention");
}

void swiglu(apr_device& dev, const apr_swiglu_args& a) {
  check_struct(a, "swiglu");
  const uint64_t n = uint64_t{a.n_rows} * a.n_cols;
  const uint64_t bytes = checked_mul(n, kF32, "swiglu");
  const float* gate = span(a.gate, a.gate_offset, bytes, "swiglu gate");
  const float* up = span(a.up, a.up_offset, bytes, "swiglu up");
  float* out = span(a.out, a.out_offset, bytes, "swiglu out");
  select(dev);
  // Before the fused kernel: out may overwrite gate.
  if (n > 0 && wants(dev, APR_STAGE_FFN_SILU, a.layer)) {
    grow_device(dev.trace_scratch, bytes, "swiglu: allocating trace scratch");
    float* silu = static_cast<float*>(dev.trace_scratch.ptr);
    check_launch(launch_swiglu(gate, nullptr, silu, n, dev.stream), "swiglu trace");
    const uint64_t shape[4] = {a.n_rows, a.n_cols, 1, 1};
    emit_view(dev, APR_STAGE_FFN_SILU, a.layer, silu, a.n_rows, a.n_cols, a.n_cols, 2, shape);
  }
  check_launch(launch_swiglu(gate, up, out, n, dev.stream), "swiglu");
}

void trace_emit(apr_device& dev, const apr_trace_emit_args& a) {
  check_struct(a, "trace_emit");
  if (!wants(dev, a.stage, a.layer)) return;
  const uint32_t stride = a.row_stride ? a.row_stride : a.n_cols;
  const float* src =
      span(a.buffer, a.offset, view_bytes(a.n_rows, a.n_cols, stride, "trace_emit"), "trace_emit");
  select(dev);
  const bool flat = a.n_rows == 1 && a.stage == APR_STAGE_LM_HEAD;
  const uint64_t shape2[4] = {a.n_rows, a.n_cols, 1, 1};
  const uint64_t shape1[4] = {a.n_cols, 1, 1, 1};
  emit_view(dev, a.stage, a.layer, src, a.n_rows, a.n_cols, stride, flat ? 1 : 2,
            flat ? shape1 : shape2);
}

}  // namespace apr_cuda
