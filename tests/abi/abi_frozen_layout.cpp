// SPDX-License-Identifier: MIT
// Compiled once against each frozen header in frozen/ (the include path picks which): the copies
// kept in the tree have exactly the offsets the current header is held to.
#include <apr/plugin.h>

#include <cstddef>

#include "abi_offsets.inc"

static_assert(APR_ABI_MAJOR == 1 && APR_ABI_MINOR == APR_FROZEN_MINOR);

// sizeof of every struct as the frozen header declares it (what a 1.0/1.1/1.2 peer sends as
// struct_size when it fills a struct with sizeof).
static_assert(sizeof(apr_trace_tensor) == 72);
static_assert(sizeof(apr_trace_sink) == 32);
static_assert(sizeof(apr_host) == 40);
static_assert(sizeof(apr_probe_result) == 272);
static_assert(sizeof(apr_device_info) == 408);
static_assert(sizeof(apr_device_options) == 16);
static_assert(sizeof(apr_weight_desc) == 56);
static_assert(sizeof(apr_embed_args) == 48);
static_assert(sizeof(apr_rms_norm_args) == 72);
static_assert(sizeof(apr_matmul_args) == 80);
static_assert(sizeof(apr_add_args) == 72);
static_assert(sizeof(apr_rope_args) == (APR_FROZEN_MINOR >= 1 ? 72 : 64));
static_assert(sizeof(apr_kv_store_args) == 72);
static_assert(sizeof(apr_attention_args) == 88);
static_assert(sizeof(apr_swiglu_args) == 72);
static_assert(sizeof(apr_trace_emit_args) == 48);
static_assert(sizeof(apr_plugin_api) == (APR_FROZEN_MINOR >= 2 ? 272 : 248));
#if APR_FROZEN_MINOR >= 2
static_assert(sizeof(apr_device_caps) == 32);
static_assert(sizeof(apr_step_args) == 48);
// The 1.2 header's least sizes, which later headers repeat unchanged.
static_assert(APR_RMS_NORM_ARGS_SIZE_V1_2 == 68 && APR_ATTENTION_ARGS_SIZE_V1_2 == 88);
static_assert(APR_SWIGLU_ARGS_SIZE_V1_2 == 68 && APR_ROPE_ARGS_SIZE_V1_2 == 72);
static_assert(APR_DEVICE_CAPS_SIZE_V1_2 == 32 && APR_STEP_ARGS_SIZE_V1_2 == 44);
static_assert(APR_PLUGIN_API_SIZE_V1_2 == 272);
#endif
