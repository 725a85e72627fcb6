// SPDX-License-Identifier: MIT
// The kernels behind the plugin table. Each validates its arguments and throws Failure on error;
// the table's wrappers in plugin_entry.cpp turn that into a status.
#pragma once

#include <apr/plugin.h>

#include "device.hpp"

namespace apr_cpu {

void run_embed(apr_device& device, const apr_embed_args& args);
void run_rms_norm(apr_device& device, const apr_rms_norm_args& args);
void run_matmul(apr_device& device, const apr_matmul_args& args);
void run_add(apr_device& device, const apr_add_args& args);
void run_rope(apr_device& device, const apr_rope_args& args);
void run_kv_store(apr_device& device, const apr_kv_store_args& args);
void run_attention(apr_device& device, const apr_attention_args& args);
void run_swiglu(apr_device& device, const apr_swiglu_args& args);
void run_trace_emit(apr_device& device, const apr_trace_emit_args& args);

// Hands a contiguous f32 tensor to the device's sink; throws APR_ERR_ABORTED if the sink refuses.
void emit_tensor(const apr_device& device, apr_stage stage, uint32_t layer, const float* data,
                 uint32_t ndim, const uint64_t* shape);

}  // namespace apr_cpu
