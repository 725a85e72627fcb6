// SPDX-License-Identifier: MIT
// Reading and writing the ABI's size-versioned structs: the least size of each input struct, the
// guarded write of an output struct's members, the copy of the host's services.
#pragma once

#include <apr/plugin.h>

#include <cstddef>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "failure.hpp"

namespace apr_sdk {

// The least struct_size any 1.x host sends for each struct (its ABI 1.0 size; 1.2 or 1.3 for the
// structs those versions added).
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
APR_SDK_MIN_SIZE(apr_step_args, APR_STEP_ARGS_SIZE_V1_2)
APR_SDK_MIN_SIZE(apr_device_caps, APR_DEVICE_CAPS_SIZE_V1_2)
APR_SDK_MIN_SIZE(apr_unary_args, APR_UNARY_ARGS_SIZE_V1_3)
#undef APR_SDK_MIN_SIZE

// A host-filled struct the plugin may read: not NULL and at least its least size. Members
// appended later are read only after APR_STRUCT_HAS.
template <typename Args>
const Args& checked_args(const Args* args, const char* what) {
  if (!args) invalid(std::string(what) + " is NULL");
  if (args->struct_size < min_size<Args>::value)
    invalid(std::string(what) + ".struct_size " + num(args->struct_size) +
            " is smaller than its ABI 1.0 size " + num(min_size<Args>::value));
  return *args;
}

// NUL-terminated copy of src into dst[capacity], cut to fit.
inline void copy_string(char* dst, size_t capacity, std::string_view src) noexcept {
  if (capacity == 0) return;
  const size_t n = src.size() < capacity - 1 ? src.size() : capacity - 1;
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

// ---- members of ABI 1.3, read with their meaning when an older host's struct ends before them.

// Elements between rows of x and of out.
inline uint32_t norm_row_stride(const apr_rms_norm_args& a) {
  const uint32_t s = APR_STRUCT_HAS(&a, apr_rms_norm_args, row_stride) ? a.row_stride : 0;
  return s ? s : a.n_cols;
}
// Groups per row, each normalised alone (1: the whole row).
inline uint32_t norm_groups(const apr_rms_norm_args& a) {
  const uint32_t g = APR_STRUCT_HAS(&a, apr_rms_norm_args, n_groups) ? a.n_groups : 0;
  return g ? g : 1;
}
// Keys a query row sees, itself included; 0: every earlier position.
inline uint32_t attention_window(const apr_attention_args& a) {
  return APR_STRUCT_HAS(&a, apr_attention_args, window) ? a.window : 0;
}
// The soft-cap of the scores; 0: none.
inline float attention_softcap(const apr_attention_args& a) {
  return APR_STRUCT_HAS(&a, apr_attention_args, softcap) ? a.softcap : 0.0f;
}
// APR_ACT_SILU or APR_ACT_GELU_TANH.
inline uint32_t gated_activation(const apr_swiglu_args& a) {
  return APR_STRUCT_HAS(&a, apr_swiglu_args, activation) ? a.activation : APR_ACT_SILU;
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

}  // namespace apr_sdk
