// SPDX-License-Identifier: MIT
// Freezes the ABI layout: a plugin built today must keep working with every later 1.x host, and
// a plugin built against an older 1.x header with this host. Member offsets of 1.0 through 1.3
// are in abi_offsets.inc; the least struct_size of each minor version is checked here.
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
// sizeof in the frozen 1.0, 1.1 and 1.2 headers); those 1.3 grew have their 1.3 sizeof.
static_assert(sizeof(apr_trace_tensor) == 72 && sizeof(apr_trace_sink) == 32);
static_assert(sizeof(apr_host) == 40 && sizeof(apr_probe_result) == 272);
static_assert(sizeof(apr_device_info) == 408 && sizeof(apr_device_options) == 16);
static_assert(sizeof(apr_weight_desc) == 56 && sizeof(apr_embed_args) == 48);
static_assert(sizeof(apr_rms_norm_args) == 80 && sizeof(apr_matmul_args) == 80);
static_assert(sizeof(apr_add_args) == 72 && sizeof(apr_rope_args) == 72);
static_assert(sizeof(apr_kv_store_args) == 72 && sizeof(apr_attention_args) == 96);
static_assert(sizeof(apr_swiglu_args) == 80 && sizeof(apr_trace_emit_args) == 48);
static_assert(sizeof(apr_device_caps) == 32 && sizeof(apr_step_args) == 48);
static_assert(sizeof(apr_unary_args) == 56);
static_assert(sizeof(apr_plugin_api) == 280);

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

// ABI 1.2: three table members and two structs appended (offsets in abi_offsets.inc); nothing
// else moved.
static_assert(APR_PLUGIN_API_SIZE_V1_2 == 272);
static_assert(APR_DEVICE_CAPS_SIZE_V1_2 == 32);
static_assert(APR_STEP_ARGS_SIZE_V1_2 == 44);
static_assert(APR_TRACE_TENSOR_SIZE_V1_2 == APR_TRACE_TENSOR_SIZE_V1_1);
static_assert(APR_TRACE_SINK_SIZE_V1_2 == APR_TRACE_SINK_SIZE_V1_1);
static_assert(APR_HOST_SIZE_V1_2 == APR_HOST_SIZE_V1_1);
static_assert(APR_PROBE_RESULT_SIZE_V1_2 == APR_PROBE_RESULT_SIZE_V1_1);
static_assert(APR_DEVICE_INFO_SIZE_V1_2 == APR_DEVICE_INFO_SIZE_V1_1);
static_assert(APR_DEVICE_OPTIONS_SIZE_V1_2 == APR_DEVICE_OPTIONS_SIZE_V1_1);
static_assert(APR_WEIGHT_DESC_SIZE_V1_2 == APR_WEIGHT_DESC_SIZE_V1_1);
static_assert(APR_EMBED_ARGS_SIZE_V1_2 == APR_EMBED_ARGS_SIZE_V1_1);
static_assert(APR_RMS_NORM_ARGS_SIZE_V1_2 == APR_RMS_NORM_ARGS_SIZE_V1_1);
static_assert(APR_MATMUL_ARGS_SIZE_V1_2 == APR_MATMUL_ARGS_SIZE_V1_1);
static_assert(APR_ADD_ARGS_SIZE_V1_2 == APR_ADD_ARGS_SIZE_V1_1);
static_assert(APR_ROPE_ARGS_SIZE_V1_2 == APR_ROPE_ARGS_SIZE_V1_1);
static_assert(APR_KV_STORE_ARGS_SIZE_V1_2 == APR_KV_STORE_ARGS_SIZE_V1_1);
static_assert(APR_ATTENTION_ARGS_SIZE_V1_2 == APR_ATTENTION_ARGS_SIZE_V1_1);
static_assert(APR_SWIGLU_ARGS_SIZE_V1_2 == APR_SWIGLU_ARGS_SIZE_V1_1);
static_assert(APR_TRACE_EMIT_ARGS_SIZE_V1_2 == APR_TRACE_EMIT_ARGS_SIZE_V1_1);

// ABI 1.3: three members of apr_rms_norm_args, two of apr_attention_args, two of apr_swiglu_args
// (reserved0 filling the 1.2 padding of both),
// the table's unary and the struct apr_unary_args; nothing else moved.
static_assert(APR_RMS_NORM_ARGS_SIZE_V1_3 == 80);
static_assert(APR_ATTENTION_ARGS_SIZE_V1_3 == 96);
static_assert(APR_SWIGLU_ARGS_SIZE_V1_3 == 76);
static_assert(APR_UNARY_ARGS_SIZE_V1_3 == 56);
static_assert(APR_PLUGIN_API_SIZE_V1_3 == 280);
static_assert(APR_TRACE_TENSOR_SIZE_V1_3 == APR_TRACE_TENSOR_SIZE_V1_2);
static_assert(APR_TRACE_SINK_SIZE_V1_3 == APR_TRACE_SINK_SIZE_V1_2);
static_assert(APR_HOST_SIZE_V1_3 == APR_HOST_SIZE_V1_2);
static_assert(APR_PROBE_RESULT_SIZE_V1_3 == APR_PROBE_RESULT_SIZE_V1_2);
static_assert(APR_DEVICE_INFO_SIZE_V1_3 == APR_DEVICE_INFO_SIZE_V1_2);
static_assert(APR_DEVICE_OPTIONS_SIZE_V1_3 == APR_DEVICE_OPTIONS_SIZE_V1_2);
static_assert(APR_WEIGHT_DESC_SIZE_V1_3 == APR_WEIGHT_DESC_SIZE_V1_2);
static_assert(APR_EMBED_ARGS_SIZE_V1_3 == APR_EMBED_ARGS_SIZE_V1_2);
static_assert(APR_MATMUL_ARGS_SIZE_V1_3 == APR_MATMUL_ARGS_SIZE_V1_2);
static_assert(APR_ADD_ARGS_SIZE_V1_3 == APR_ADD_ARGS_SIZE_V1_2);
static_assert(APR_ROPE_ARGS_SIZE_V1_3 == APR_ROPE_ARGS_SIZE_V1_2);
static_assert(APR_KV_STORE_ARGS_SIZE_V1_3 == APR_KV_STORE_ARGS_SIZE_V1_2);
static_assert(APR_TRACE_EMIT_ARGS_SIZE_V1_3 == APR_TRACE_EMIT_ARGS_SIZE_V1_2);
static_assert(APR_DEVICE_CAPS_SIZE_V1_3 == APR_DEVICE_CAPS_SIZE_V1_2);
static_assert(APR_STEP_ARGS_SIZE_V1_3 == APR_STEP_ARGS_SIZE_V1_2);

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

TEST_CASE("APR_STRUCT_HAS tells a 1.2 plugin table or argument struct from a 1.3 one") {
  apr_plugin_api api{};
  api.struct_size = APR_PLUGIN_API_SIZE_V1_2;
  CHECK_FALSE(APR_STRUCT_HAS(&api, apr_plugin_api, unary));
  CHECK(APR_STRUCT_HAS(&api, apr_plugin_api, step_end));
  api.struct_size = APR_PLUGIN_API_SIZE_V1_3;
  CHECK(APR_STRUCT_HAS(&api, apr_plugin_api, unary));

  apr_attention_args att{};
  att.struct_size = 88;  // a 1.2 host's, APR_ATTENTION_ARGS_SIZE_V1_2 or sizeof alike
  CHECK_FALSE(APR_STRUCT_HAS(&att, apr_attention_args, window));
  CHECK_FALSE(APR_STRUCT_HAS(&att, apr_attention_args, softcap));
  att.struct_size = APR_ATTENTION_ARGS_SIZE_V1_3;
  CHECK(APR_STRUCT_HAS(&att, apr_attention_args, softcap));

  apr_rms_norm_args norm{};
  norm.struct_size = APR_RMS_NORM_ARGS_SIZE_V1_2;
  CHECK_FALSE(APR_STRUCT_HAS(&norm, apr_rms_norm_args, row_stride));
  CHECK_FALSE(APR_STRUCT_HAS(&norm, apr_rms_norm_args, n_groups));
  norm.struct_size = APR_RMS_NORM_ARGS_SIZE_V1_3;
  CHECK(APR_STRUCT_HAS(&norm, apr_rms_norm_args, n_groups));
  apr_swiglu_args sw{};
  sw.struct_size = APR_SWIGLU_ARGS_SIZE_V1_2;
  CHECK_FALSE(APR_STRUCT_HAS(&sw, apr_swiglu_args, activation));
  sw.struct_size = APR_SWIGLU_ARGS_SIZE_V1_3;
  CHECK(APR_STRUCT_HAS(&sw, apr_swiglu_args, activation));

  // 1.3's members start after the 72 bytes sizeof gave both structs in 1.2 (reserved0 fills the
  // old tail padding): a 1.2 peer that sends sizeof covers none of them, whatever its padding held.
  norm.struct_size = 72;
  CHECK_FALSE(APR_STRUCT_HAS(&norm, apr_rms_norm_args, row_stride));
  CHECK_FALSE(APR_STRUCT_HAS(&norm, apr_rms_norm_args, n_groups));
  sw.struct_size = 72;
  CHECK_FALSE(APR_STRUCT_HAS(&sw, apr_swiglu_args, activation));
}

TEST_CASE("ABI constants of version 1.x") {
  CHECK(APR_ABI_MAJOR == 1);
  CHECK(APR_ABI_MINOR == 3);
  CHECK(APR_STAGE_COUNT_V1_0 == 20);
  CHECK(APR_STAGE_LM_HEAD == 19);
  // 1.3: six stages appended after LM_HEAD (their forward-order place is in the kit's names.hpp).
  CHECK(APR_STAGE_COUNT_V1_3 == 26);
  CHECK(APR_STAGE_Q_NORM == 20);
  CHECK(APR_STAGE_K_NORM == 21);
  CHECK(APR_STAGE_ATTN_POST_NORM == 22);
  CHECK(APR_STAGE_FFN_GELU == 23);
  CHECK(APR_STAGE_FFN_GEGLU == 24);
  CHECK(APR_STAGE_FFN_POST_NORM == 25);
  CHECK(APR_FEATURE_ROPE_FREQ_FACTORS == 1u);
  CHECK(APR_FEATURE_STEP_CAPTURE == 2u);
  CHECK(APR_FEATURE_FUSED_TRACE == 4u);
  CHECK(APR_FEATURE_NORM_GROUPS == 8u);
  CHECK(APR_FEATURE_ATTN_WINDOW == 16u);
  CHECK(APR_FEATURE_ATTN_SOFTCAP == 32u);
  CHECK(APR_FEATURE_GELU == 64u);
  CHECK(APR_ACT_SILU == 0);
  CHECK(APR_ACT_GELU_TANH == 1);
  CHECK(APR_UNARY_SCALE == 0);
  CHECK(APR_UNARY_SOFTCAP == 1);
  CHECK(APR_LAYER_NONE == 0xFFFFFFFFu);
  CHECK(APR_TYPE_BF16 == 30);
  CHECK(APR_TYPE_Q6_K == 14);
  CHECK(APR_STEP_SCALARS_BYTES(1) == 20);
}
