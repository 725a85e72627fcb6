// Freezes the ABI 1.0 layout: a plugin built today must keep working with every later 1.x host.
// If one of these fails, a change moved a member: append instead, and bump the minor version.
#include <apr/plugin.h>

#include <catch2/catch.hpp>
#include <cstddef>

#define SLOT(type, member) (offsetof(type, member) / sizeof(void*))

static_assert(sizeof(void*) == 8, "the frozen offsets below are those of 64-bit targets");
static_assert(offsetof(apr_plugin_api, struct_size) == 0);
static_assert(offsetof(apr_plugin_api, abi_major) == 8);
static_assert(offsetof(apr_plugin_api, abi_minor) == 12);
static_assert(offsetof(apr_plugin_api, name) == 16);
static_assert(SLOT(apr_plugin_api, aliases) == 5);
static_assert(SLOT(apr_plugin_api, init) == 6);
static_assert(SLOT(apr_plugin_api, shutdown) == 7);
static_assert(SLOT(apr_plugin_api, probe) == 8);
static_assert(SLOT(apr_plugin_api, error_message) == 9);
static_assert(SLOT(apr_plugin_api, device_count) == 10);
static_assert(SLOT(apr_plugin_api, device_info) == 11);
static_assert(SLOT(apr_plugin_api, device_open) == 12);
static_assert(SLOT(apr_plugin_api, device_close) == 13);
static_assert(SLOT(apr_plugin_api, set_trace_sink) == 14);
static_assert(SLOT(apr_plugin_api, buffer_alloc) == 15);
static_assert(SLOT(apr_plugin_api, buffer_free) == 16);
static_assert(SLOT(apr_plugin_api, buffer_write) == 17);
static_assert(SLOT(apr_plugin_api, buffer_read) == 18);
static_assert(SLOT(apr_plugin_api, synchronize) == 19);
static_assert(SLOT(apr_plugin_api, weight_create) == 20);
static_assert(SLOT(apr_plugin_api, weight_free) == 21);
static_assert(SLOT(apr_plugin_api, embed) == 22);
static_assert(SLOT(apr_plugin_api, rms_norm) == 23);
static_assert(SLOT(apr_plugin_api, matmul) == 24);
static_assert(SLOT(apr_plugin_api, add) == 25);
static_assert(SLOT(apr_plugin_api, rope) == 26);
static_assert(SLOT(apr_plugin_api, kv_store) == 27);
static_assert(SLOT(apr_plugin_api, attention) == 28);
static_assert(SLOT(apr_plugin_api, swiglu) == 29);
static_assert(SLOT(apr_plugin_api, trace_emit) == 30);
static_assert(APR_PLUGIN_API_SIZE_V1_0 == 31 * 8);

static_assert(offsetof(apr_trace_tensor, stage) == 8);
static_assert(offsetof(apr_trace_tensor, layer) == 12);
static_assert(offsetof(apr_trace_tensor, dtype) == 16);
static_assert(offsetof(apr_trace_tensor, ndim) == 20);
static_assert(offsetof(apr_trace_tensor, shape) == 24);
static_assert(offsetof(apr_trace_tensor, data) == 56);
static_assert(offsetof(apr_trace_tensor, nbytes) == 64);
static_assert(offsetof(apr_trace_sink, user_data) == 8);
static_assert(offsetof(apr_trace_sink, wants) == 16);
static_assert(offsetof(apr_trace_sink, emit) == 24);
static_assert(offsetof(apr_host, abi_major) == 8);
static_assert(offsetof(apr_host, log) == 32);
static_assert(offsetof(apr_probe_result, score) == 8);
static_assert(offsetof(apr_probe_result, reason) == 12);
static_assert(offsetof(apr_device_info, kind) == 8);
static_assert(offsetof(apr_device_info, memory_bytes) == 16);
static_assert(offsetof(apr_device_info, name) == 24);
static_assert(offsetof(apr_device_info, description) == 152);
static_assert(offsetof(apr_weight_desc, type) == 8);
static_assert(offsetof(apr_weight_desc, n_cols) == 16);
static_assert(offsetof(apr_weight_desc, data) == 32);
static_assert(offsetof(apr_weight_desc, name) == 48);
static_assert(offsetof(apr_matmul_args, weight) == 8);
static_assert(offsetof(apr_matmul_args, x_row_stride) == 32);
static_assert(offsetof(apr_matmul_args, n_rows) == 36);
static_assert(offsetof(apr_matmul_args, bias) == 40);
static_assert(offsetof(apr_matmul_args, y_row_stride) == 72);
static_assert(offsetof(apr_attention_args, scale) == 48);
static_assert(offsetof(apr_attention_args, layer) == 52);
static_assert(offsetof(apr_attention_args, k_cache) == 56);
static_assert(offsetof(apr_rope_args, freq_base) == 52);
// ABI 1.1 appended freq_factors after the 1.0 members.
static_assert(APR_ROPE_ARGS_SIZE_V1_0 == 60);
static_assert(offsetof(apr_rope_args, freq_factors) == 64);
static_assert(offsetof(apr_trace_emit_args, buffer) == 16);

TEST_CASE("APR_STRUCT_HAS tells a 1.0 caller's struct from a 1.1 one") {
  apr_rope_args args{};
  args.struct_size = APR_ROPE_ARGS_SIZE_V1_0;
  CHECK_FALSE(APR_STRUCT_HAS(&args, apr_rope_args, freq_factors));
  CHECK(APR_STRUCT_HAS(&args, apr_rope_args, freq_scale));
  args.struct_size = sizeof args;
  CHECK(APR_STRUCT_HAS(&args, apr_rope_args, freq_factors));
}

TEST_CASE("ABI constants of version 1.x") {
  CHECK(APR_ABI_MAJOR == 1);
  CHECK(APR_ABI_MINOR == 1);
  CHECK(APR_STAGE_COUNT_V1_0 == 20);
  CHECK(APR_STAGE_LM_HEAD == 19);
  CHECK(APR_LAYER_NONE == 0xFFFFFFFFu);
  CHECK(APR_TYPE_BF16 == 30);
  CHECK(APR_TYPE_Q6_K == 14);
}
