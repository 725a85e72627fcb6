// SPDX-License-Identifier: MIT
// Optional header-only C++17 helpers for writing an apr backend plugin in C++: the glue every
// plugin needs around its kernels, written once. Nothing here is part of the ABI: plugin.h alone
// is the contract, and a plugin may ignore this file.
//
//  - errors:  throw apr_sdk::Failure (fail, invalid, require) inside a call; apr_sdk::guarded()
//             turns it into an apr_status and a per-thread message for error_message().
//  - inputs:  apr_sdk::checked_args() refuses a NULL or too-small argument struct, using the
//             least size of ABI 1.0 (never sizeof, which grows with the header you build with).
//  - outputs: APR_SDK_SET / APR_SDK_SET_STRING write a member of a host-sized output struct only
//             when it lies inside the host's struct_size.
//  - ranges:  apr_sdk::view_bytes() and apr_sdk::check_range() with overflow checks.
//  - tracing: apr_sdk::TraceSink copies the host's sink, answers wants(), and emits tensors.
//
// Build plugins with only the entry point exported: the CMake package's AprPlugin::plugin target
// and the pkg-config file add the version script that does that.
#pragma once

#include <apr/plugin.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

namespace apr_sdk {

// ---- errors --------------------------------------------------------------------------------

class Failure : public std::exception {
 public:
  Failure(apr_status status, std::string message) : status_(status), message_(std::move(message)) {}
  apr_status status() const noexcept { return status_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  apr_status status_;
  std::string message_;
};

[[noreturn]] inline void fail(apr_status status, const std::string& message) {
  throw Failure(status, message);
}
[[noreturn]] inline void invalid(const std::string& message) {
  throw Failure(APR_ERR_INVALID_ARGUMENT, message);
}
inline void require(bool condition, apr_status status, const std::string& message) {
  if (!condition) fail(status, message);
}

// Decimal text of an integer. std::to_string would do, but its digit table is a GNU unique
// symbol; snprintf keeps the plugin free of them.
template <typename T>
std::string num(T value) {
  static_assert(std::is_integral_v<T>);
  char text[32];
  if constexpr (std::is_signed_v<T>)
    std::snprintf(text, sizeof text, "%lld", static_cast<long long>(value));
  else
    std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(value));
  return text;
}

// The message of the last failed call on this thread, for apr_plugin_api.error_message.
inline std::string& last_error_storage() {
  static thread_local std::string message = "no error";
  return message;
}
inline void set_last_error(const std::string& message) noexcept {
  try {
    last_error_storage() = message;
  } catch (...) {
    // Keeping the previous message is better than throwing out of an error path.
  }
}
inline const char* last_error() noexcept {
  return last_error_storage().c_str();
}

// Runs body(); every exception becomes a status and "<call>: <message>". Nothing thrown ever
// crosses the C boundary.
template <typename Body>
apr_status guarded(const char* call, Body&& body) noexcept {
  try {
    body();
    return APR_OK;
  } catch (const Failure& f) {
    set_last_error(std::string(call) + ": " + f.what());
    return f.status();
  } catch (const std::bad_alloc&) {
    set_last_error(std::string(call) + ": out of host memory");
    return APR_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(std::string(call) + ": internal error: " + e.what());
    return APR_ERR_INTERNAL;
  } catch (...) {
    set_last_error(std::string(call) + ": internal error");
    return APR_ERR_INTERNAL;
  }
}

// ---- argument structs ------------------------------------------------------------------------

// The least struct_size any 1.x host sends for each struct (its ABI 1.0 size).
template <typename T>
struct min_size;
#define APR_SDK_MIN_SIZE(type, constant)      \
  template <>                                 \
  struct min_size<type> {                     \
    static constexpr size_t value = constant; \
  };
APR_SDK_MIN_SIZE(apr_trace_sink, APR_TRACE_SINK_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_trace_tensor, APR_TRACE_TENSOR_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_host, APR_HOST_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_device_options, APR_DEVICE_OPTIONS_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_weight_desc, APR_WEIGHT_DESC_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_embed_args, APR_EMBED_ARGS_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_rms_norm_args, APR_RMS_NORM_ARGS_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_matmul_args, APR_MATMUL_ARGS_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_add_args, APR_ADD_ARGS_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_rope_args, APR_ROPE_ARGS_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_kv_store_args, APR_KV_STORE_ARGS_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_attention_args, APR_ATTENTION_ARGS_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_swiglu_args, APR_SWIGLU_ARGS_SIZE_V1_0)
APR_SDK_MIN_SIZE(apr_trace_emit_args, APR_TRACE_EMIT_ARGS_SIZE_V1_0)
#if APR_ABI_MINOR >= 2
APR_SDK_MIN_SIZE(apr_step_args, APR_STEP_ARGS_SIZE_V1_2)
APR_SDK_MIN_SIZE(apr_device_caps, APR_DEVICE_CAPS_SIZE_V1_2)
#endif
#undef APR_SDK_MIN_SIZE

// A host-filled struct the plugin may read: not NULL and at least its ABI 1.0 size. Members
// appended later are read only after APR_STRUCT_HAS.
template <typename Args>
const Args& checked_args(const Args* args, const char* what) {
  if (!args) invalid(std::string(what) + " is NULL");
  if (args->struct_size < min_size<Args>::value)
    invalid(std::string(what) + ".struct_size " + num(args->struct_size) +
            " is smaller than its ABI 1.0 size " + num(min_size<Args>::value));
  return *args;
}

// ---- output structs --------------------------------------------------------------------------

// NUL-terminated copy of src into dst[capacity], cut to fit.
inline void copy_string(char* dst, size_t capacity, std::string_view src) noexcept {
  if (capacity == 0) return;
  const size_t n = src.size() < capacity - 1 ? src.size() : capacity - 1;
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

}  // namespace apr_sdk

// Write a member of a host-sized output struct (apr_probe_result, apr_device_info, ...) only if
// the host's struct_size holds it.
#define APR_SDK_SET(ptr, member, value)                                    \
  do {                                                                     \
    if (APR_STRUCT_HAS(ptr, std::remove_pointer_t<decltype(ptr)>, member)) \
      (ptr)->member = (value);                                             \
  } while (0)
#define APR_SDK_SET_STRING(ptr, member, text)                               \
  do {                                                                      \
    if (APR_STRUCT_HAS(ptr, std::remove_pointer_t<decltype(ptr)>, member))  \
      ::apr_sdk::copy_string((ptr)->member, sizeof((ptr)->member), (text)); \
  } while (0)

namespace apr_sdk {

// A copy of the host's apr_host: members beyond the host's struct_size read as zero/NULL.
inline apr_host copy_host(const apr_host* host) {
  if (!host) invalid("host is NULL");
  if (host->struct_size < APR_SIZE_THROUGH(apr_host, abi_minor))
    invalid("apr_host.struct_size " + num(host->struct_size) + " is too small");
  apr_host copy{};
  std::memcpy(&copy, host, host->struct_size < sizeof copy ? host->struct_size : sizeof copy);
  copy.struct_size = sizeof copy;
  if (!APR_STRUCT_HAS(host, apr_host, log)) copy.log = nullptr;
  return copy;
}

// ---- ranges ----------------------------------------------------------------------------------

// Bytes spanned by n_rows rows of n_cols f32 placed row_stride elements apart; refuses a stride
// shorter than a row and sizes that overflow.
inline uint64_t view_bytes(uint64_t n_rows, uint64_t n_cols, uint64_t row_stride,
                           const char* what) {
  if (n_rows == 0 || n_cols == 0) return 0;
  if (row_stride < n_cols)
    invalid(std::string(what) + ": row stride " + num(row_stride) + " is shorter than the row " +
            num(n_cols));
  uint64_t elems, bytes;
  if (__builtin_mul_overflow(n_rows - 1, row_stride, &elems) ||
      __builtin_add_overflow(elems, n_cols, &elems) || __builtin_mul_overflow(elems, 4, &bytes))
    invalid(std::string(what) + ": size overflows 64 bits");
  return bytes;
}

// offset is a multiple of 4 and [offset, offset + nbytes) lies inside a buffer of buffer_size.
inline void check_range(uint64_t buffer_size, uint64_t offset, uint64_t nbytes, const char* what) {
  if (offset % 4 != 0)
    invalid(std::string(what) + ": offset " + num(offset) + " is not a multiple of 4");
  uint64_t end;
  if (__builtin_add_overflow(offset, nbytes, &end) || end > buffer_size)
    invalid(std::string(what) + ": bytes [" + num(offset) + ", +" + num(nbytes) +
            ") lie outside the buffer of " + num(buffer_size) + " bytes");
}

// ---- tracing ---------------------------------------------------------------------------------

// The device's copy of the host's trace sink. Follow plugin.h's tracing rule: emit the tensor
// the computation of the next stage used, and compute nothing extra unless wants() said yes.
class TraceSink {
 public:
  // Installs sink (NULL: tracing off), refusing one that is too small or lacks a callback.
  void set(const apr_trace_sink* sink) {
    if (!sink) {
      active_ = false;
      sink_ = apr_trace_sink{};
      return;
    }
    if (sink->struct_size < APR_TRACE_SINK_SIZE_V1_0)
      invalid("apr_trace_sink.struct_size " + num(sink->struct_size) +
              " is smaller than its ABI 1.0 size " + num(size_t{APR_TRACE_SINK_SIZE_V1_0}));
    if (!sink->wants || !sink->emit) invalid("the sink's wants or emit is NULL");
    sink_ = apr_trace_sink{};
    std::memcpy(&sink_, sink, APR_TRACE_SINK_SIZE_V1_0);
    sink_.struct_size = sizeof sink_;
    active_ = true;
  }
  bool active() const { return active_; }
  bool wants(apr_stage stage, uint32_t layer) const {
    return active_ && sink_.wants(sink_.user_data, stage, layer) != 0;
  }
  // Hands a packed f32 host tensor to the host; throws APR_ERR_ABORTED when the host says stop.
  void emit(apr_stage stage, uint32_t layer, const float* data,
            std::initializer_list<uint64_t> shape) const {
    emit(stage, layer, data, static_cast<uint32_t>(shape.size()), shape.begin());
  }
  void emit(apr_stage stage, uint32_t layer, const float* data, uint32_t ndim,
            const uint64_t* shape) const {
    apr_trace_tensor t{};
    t.struct_size = sizeof t;
    t.stage = stage;
    t.layer = layer;
    t.dtype = APR_TYPE_F32;
    t.ndim = ndim;
    if (ndim < 1 || ndim > 4) fail(APR_ERR_INTERNAL, "trace tensor rank " + num(ndim));
    uint64_t elems = 1;
    for (uint32_t i = 0; i < 4; ++i) {
      t.shape[i] = i < ndim ? shape[i] : 1;
      elems *= t.shape[i];
    }
    t.data = data;
    t.nbytes = elems * sizeof(float);
    const apr_status s = sink_.emit(sink_.user_data, &t);
    if (s != APR_OK)
      fail(APR_ERR_ABORTED, "the trace sink refused stage " + num(stage) + " of layer " +
                                num(layer) + " (status " + num(s) + ")");
  }

 private:
  apr_trace_sink sink_{};
  bool active_ = false;
};

}  // namespace apr_sdk
