/* SPDX-License-Identifier: MIT */
/* Force-included (-include) when a plugin source is built against a frozen 1.0, 1.1 or 1.2 header:
 * the frozen <apr/plugin.h> first, then the size constants and APR_STRUCT_HAS that later headers
 * added, spelled as an author targeting the old header would have written them. */
#ifndef APR_FROZEN_COMPAT_H
#define APR_FROZEN_COMPAT_H
#include <apr/plugin.h>

#ifndef APR_SIZE_THROUGH
#define APR_SIZE_THROUGH(type, member) (offsetof(type, member) + sizeof(((type*)0)->member))
#endif
#ifndef APR_STRUCT_HAS
#define APR_STRUCT_HAS(ptr, type, member) ((ptr)->struct_size >= APR_SIZE_THROUGH(type, member))
#endif
#ifndef APR_TRACE_SINK_SIZE_V1_0
#define APR_TRACE_SINK_SIZE_V1_0 APR_SIZE_THROUGH(apr_trace_sink, emit)
#define APR_DEVICE_OPTIONS_SIZE_V1_0 APR_SIZE_THROUGH(apr_device_options, n_threads)
#define APR_WEIGHT_DESC_SIZE_V1_0 APR_SIZE_THROUGH(apr_weight_desc, name)
#define APR_EMBED_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_embed_args, out_offset)
#define APR_RMS_NORM_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_rms_norm_args, eps)
#define APR_MATMUL_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_matmul_args, y_row_stride)
#define APR_ADD_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_add_args, b_period)
#define APR_KV_STORE_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_kv_store_args, v_cache)
#define APR_ATTENTION_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_attention_args, out_offset)
#define APR_SWIGLU_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_swiglu_args, layer)
#define APR_TRACE_EMIT_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_trace_emit_args, row_stride)
#endif
#ifndef APR_ROPE_ARGS_SIZE_V1_0
#define APR_ROPE_ARGS_SIZE_V1_0 APR_SIZE_THROUGH(apr_rope_args, freq_scale)
#endif
#endif
