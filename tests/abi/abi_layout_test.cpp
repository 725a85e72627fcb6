// SPDX-License-Identifier: MIT
// Freezes the ABI layout: a plugin built today must keep working with every later 1.x host, and
// a plugin built against an older 1.x header with this host. Member offsets of 1.0 and 1.1 are in
// abi_offsets.inc; the least struct_size of each minor version is checked here.
#include <apr/plugin.h>

#include <catch2/catch.hpp>
#include <cstddef>

#include "abi_offsets.inc"

// The least struct_size of ABI 1.0: bytes through the last 1.0 member.
static_assert(APR_TRACE_TENSOR_SIZE_V1_0 == 72);
static_assert(APR_TRACE_SINK_SIZE_V1_0 == 32);
static_assert(APR_HOST_SIZE_V1_0 == 40);
static_assert(APR_PROBE_RESULT_SIZE_V1_0 == 268);
static_assert(APR_DEVICE_INFO_SIZE_V1_0 == 408);
static_assert(APR_DEVICE_OPTIONS_SIZE_V1_0 == 12);
static_assert(APR_WEIGHT_DESC_SIZE_V1_0 == 56);
static_assert(APR_EMBED_ARGS_SIZE_V1_0 == 48);
static_assert(APR_RMS_NORM_ARGS_SIZE_V1_0 == 68);
static_assert(APR_MATMUL_ARGS_SIZE_V1_0 == 76);
static_assert(APR_ADD_ARGS_SIZE_V1_0 == 72);
static_assert(APR_ROPE_ARGS_SIZE_V1_0 == 60);
static_assert(APR_KV_STORE_ARGS_SIZE_V1_0 == 72);
static_assert(APR_ATTENTION_ARGS_SIZE_V1_0 == 88);
static_assert(APR_SWIGLU_ARGS_SIZE_V1_0 == 68);
static_assert(APR_TRACE_EMIT_ARGS_SIZE_V1_0 == 44);
static_assert(APR_PLUGIN_API_SIZE_V1_0 == 31 * 8);

// Structs that kept their layout since 1.0 keep their sizeof too (abi_frozen_layout.cpp checks
// sizeof in the frozen 1.0 and 1.1 headers).
static_assert(sizeof(apr_trace_tensor) == 72 && sizeof(apr_trace_sink) == 32);
static_assert(sizeof(apr_host) == 40 && sizeof(apr_probe_result) == 272);
static_assert(sizeof(apr_device_info) == 408 && sizeof(apr_device_options) == 16);
static_assert(sizeof(apr_weight_desc) == 56 && sizeof(apr_embed_args) == 48);
static_assert(sizeof(apr_rms_norm_args) == 72 && sizeof(apr_matmul_args) == 80);
static_assert(sizeof(apr_add_args) == 72 && sizeof(apr_rope_args) == 72);
static_assert(sizeof(apr_kv_store_args) == 72 && sizeof(apr_attention_args) == 88);
static_assert(sizeof(apr_swiglu_args) == 72 && sizeof(apr_trace_emit_args) == 48);
static_assert(sizeof(apr_plugin_api) == 272);

// ABI 1.1 grew only apr_rope_args.
static_assert(APR_ROPE_ARGS_SIZE_V1_1 == 72);
static_assert(APR_TRACE_TENSOR_SIZE_V1_1 == APR_TRACE_TENSOR_SIZE_V1_0);
static_assert(APR_TRACE_SINK_SIZE_V1_1 == APR_TRACE_SINK_SIZE_V1_0);
static_assert(APR_HOST_SIZE_V1_1 == APR_HOST_SIZE_V1_0);
static_assert(APR_PROBE_RESULT_SIZE_V1_1 == APR_PROBE_RESULT_SIZE_V1_0);
static_assert(APR_DEVICE_INFO_SIZE_V1_1 == APR_DEVICE_INFO_SIZE_V1_0);
static_assert(APR_DEVICE_OPTIONS_SIZE_V1_1 == APR_DEVICE_OPTIONS_SIZE_V1_0);
static_assert(APR_WEIGHT_DESC_SIZE_V1_1 == APR_WEIGHT_DESC_SIZE_V1_0);
static_assert(APR_EMBED_ARGS_SIZE_V1_1 == APR_EMBED_ARGS_SIZE_V1_0);
static_assert(APR_RMS_NORM_ARGS_SIZE_V1_1 == APR_RMS_NORM_ARGS_SIZE_V1_0);
static_assert(APR_MATMUL_ARGS_SIZE_V1_1 == APR_MATMUL_ARGS_SIZE_V1_0);
static_assert(APR_ADD_ARGS_SIZE_V1_1 == APR_ADD_ARGS_SIZE_V1_0);
static_assert(APR_KV_STORE_ARGS_SIZE_V1_1 == APR_KV_STORE_ARGS_SIZE_V1_0);
static_assert(APR_ATTENTION_ARGS_SIZE_V1_1 == APR_ATTENTION_ARGS_SIZE_V1_0);
static_assert(APR_SWIGLU_ARGS_SIZE_V1_1 == APR_SWIGLU_ARGS_SIZE_V1_0);
static_assert(APR_TRACE_EMIT_ARGS_SIZE_V1_1 == APR_TRACE_EMIT_ARGS_SIZE_V1_0);
static_assert(APR_PLUGIN_API_SIZE_V1_1 == APR_PLUGIN_API_SIZE_V1_0);

// ABI 1.2: three table members and two structs appended; nothing else moved.
static_assert(offsetof(apr_plugin_api, device_caps) == 248);
static_assert(offsetof(apr_plugin_api, step_begin) == 256);
static_assert(offsetof(apr_plugin_api, step_end) == 264);
static_assert(APR_PLUGIN_API_SIZE_V1_2 == 272);
static_assert(offsetof(apr_device_caps, weight_types) == 8);
static_assert(offsetof(apr_device_caps, features) == 16);
static_assert(offsetof(apr_device_caps, max_buffer_bytes) == 24);
static_assert(APR_DEVICE_CAPS_SIZE_V1_2 == 32);
static_assert(offsetof(apr_step_args, shape_key) == 8);
static_assert(offsetof(apr_step_args, scalars) == 16);
static_assert(offsetof(apr_step_args, scalars_offset) == 24);
static_assert(offsetof(apr_step_args, n_rows) == 32);
static_assert(offsetof(apr_step_args, pos0) == 36);
static_assert(offsetof(apr_step_args, flags) == 40);
static_assert(APR_STEP_ARGS_SIZE_V1_2 == 44);
static_assert(APR_ROPE_ARGS_SIZE_V1_2 == APR_ROPE_ARGS_SIZE_V1_1);
static_assert(APR_MATMUL_ARGS_SIZE_V1_2 == APR_MATMUL_ARGS_SIZE_V1_0);

TEST_CASE("APR_STRUCT_HAS tells a 1.0 caller's struct from a 1.1 one") {
  apr_rope_args args{};
  args.struct_size = APR_ROPE_ARGS_SIZE_V1_0;
  CHECK_FALSE(APR_STRUCT_HAS(&args, apr_rope_args, freq_factors));
  CHECK(APR_STRUCT_HAS(&args, apr_rope_args, freq_scale));
  args.struct_size = APR_ROPE_ARGS_SIZE_V1_1;
  CHECK(APR_STRUCT_HAS(&args, apr_rope_args, freq_factors));
}

TEST_CASE("APR_STRUCT_HAS tells a 1.1 plugin table from a 1.2 one") {
  apr_plugin_api api{};
  api.struct_size = APR_PLUGIN_API_SIZE_V1_1;
  CHECK_FALSE(APR_STRUCT_HAS(&api, apr_plugin_api, device_caps));
  CHECK(APR_STRUCT_HAS(&api, apr_plugin_api, trace_emit));
  api.struct_size = APR_PLUGIN_API_SIZE_V1_2;
  CHECK(APR_STRUCT_HAS(&api, apr_plugin_api, step_end));
}

TEST_CASE("ABI constants of version 1.x") {
  CHECK(APR_ABI_MAJOR == 1);
  CHECK(APR_ABI_MINOR == 2);
  CHECK(APR_STAGE_COUNT_V1_0 == 20);
  CHECK(APR_STAGE_LM_HEAD == 19);
  CHECK(APR_LAYER_NONE == 0xFFFFFFFFu);
  CHECK(APR_TYPE_BF16 == 30);
  CHECK(APR_TYPE_Q6_K == 14);
  CHECK(APR_STEP_SCALARS_BYTES(1) == 20);
}
