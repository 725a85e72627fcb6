// SPDX-License-Identifier: MIT
// The kernels behind the device's methods. The kit has checked every argument (handles, views,
// overlaps, scalars) before they run; they throw Failure only for what is their own.
#pragma once

#include <apr/plugin.h>

struct apr_device;

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
void run_unary(apr_device& device, const apr_unary_args& args);

}  // namespace apr_cpu
