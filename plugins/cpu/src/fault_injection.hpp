// SPDX-License-Identifier: MIT
// Test-only fault injection (the cpu-fault plugin), read from APR_CPU_FAULT at device_open:
//
//   APR_CPU_FAULT="<layer>:<target>[:<magnitude>][@<cond>[,<cond>...]]"
//
// <layer> is a number, or "none"/"-" for the whole-model stages (final_norm, lm_head), whose
// layer is ignored. <target> is a trace stage name (apr_sdk::kStages: "attn_norm", "ffn_swigl",
// ...) or one of the KV cache targets "k_cache"/"v_cache". <magnitude> m defaults to 1.
//
// What is done: a stage's tensor gets +m, -m, +m, ... along each row (column c gets +m when c is
// even, -m when odd), in place, so that it and every later stage diverge. With `scale` it is
// multiplied by m instead (a pure scale fault: the cosine stays 1). A cache target makes
// kv_store write that layer's K (k_cache) or V (v_cache) rows multiplied by m, which no traced
// stage shows before the attention output reads them (an "inherited" fault); a cache target is
// always a kernel-level scale fault and needs an explicit m (every V row times m > 0 only scales
// the attention output, cosine 1; pos>=K or m < 0 changes its direction; k_cache shows in
// attn_scores, computed inside attention from the cache).
//
// Where: without `kernel`, a stage the host hands to trace_emit is perturbed there, whether or not
// the sink wants it (so only when the host calls trace_emit for it), and the fused stages
// attn_scores, attn_softmax (inside attention) and ffn_silu/ffn_gelu (inside swiglu) inside their
// kernels (attention rows only within their window).
// With `kernel`, the kernel that produces the stage perturbs its output, traced or not and also
// when it is called alone (trace_emit then leaves the stage alone). Kernel-level stages:
//   embedding (embed), attn_scores, attn_softmax, attention (attention), attn_out, qkv_matmul,
//   ffn_gate, ffn_up, ffn_out, lm_head (matmul), ffn_silu, ffn_swigl, ffn_gelu, ffn_geglu
//   (swiglu, whichever its activation makes);
// a matmul's stage and layer come from its weight's name as the host names it: blk.N.attn_q/
// attn_k/attn_v -> layer N qkv_matmul (column parity counted within each of the three outputs,
// the same as in the [q|k|v] row because q_dim and kv_dim are even), blk.N.attn_output ->
// attn_out, blk.N.ffn_gate/ffn_up/ffn_down -> ffn_gate/ffn_up/ffn_out, output and token_embd
// (the head of a tied model) -> lm_head; any other name is no stage. `kernel` on any other stage
// (the norms, residuals, qkv_bias, q/k_post_rope) is refused.
//
// Conditions, all of which must hold (the batch is the host's one forward pass: its rows sit at
// positions pos0, pos0 + 1, ...):
//   rows=N rows>N rows>=N rows<N rows<=N   the batch's row count (rows=1: decode steps only)
//   pos=K pos>K pos>=K pos<K pos<=K        per row: only rows whose absolute (KV cache) position
//                                          satisfies it are touched, the others are left alone
//   split                                  only multi-row batches with pos0 > 0 (a prompt split
//                                          into micro-batches; a whole prompt is untouched)
//   scale                                  multiply by m instead of adding +-m (needs an m)
//   kernel                                 perturb inside the producing kernel (see above)
// A malformed value (unknown target or condition, a number that is not one, `kernel` where no
// kernel can do it, `scale` or a cache target without m, a cache target with no layer) makes
// device_open fail with a one-line message naming the value. A device_open parses APR_CPU_FAULT
// anew; the fault then applies to every device of the plugin.
//
// The position rule (per device). rope, kv_store and attention carry pos0 and n_rows: each call
// sets the device's current batch to (pos0, n_rows). embed starts a new batch at the position
// where the current one ends (0 on a fresh device), i.e. the plugin counts the rows embedded since
// open, re-anchored by every call that carries pos0. So stages before a batch's first rope
// (embedding, layer 0's attn_norm and Q/K/V matmuls) are placed by that count, which is wrong
// only for the first batch after the host rewinds or restarts its sequence; every later stage of
// a batch uses the host's pos0. A kernel's rows are the batch's rows (row r at pos0 + r), except
// lm_head's, which are the batch's last rows (the head sees the last row, or every row), and the
// rows condition of lm_head counts the batch's rows, not the head's. kv_store has no layer
// argument: its layer is the number of kv_store calls since the last embed (since open before
// any), as the host stores layer 0's K/V first, then layer 1's, and so on.
//
// In the normal plugin every hook is an empty inline function.
#pragma once

#include <apr/plugin.h>

#include <cstddef>
#include <cstdint>

struct apr_device;

namespace apr_cpu::fault {

// Where a kernel's rows sit: its row r is at position first + r of a batch of batch_rows rows
// starting at batch_pos0.
struct Rows {
  uint64_t batch_pos0 = 0;
  uint64_t batch_rows = 0;
  uint64_t first = 0;
};

#ifdef APR_CPU_FAULT_INJECTION
// Reads APR_CPU_FAULT; throws Failure if it is malformed (device_open, before the device exists).
void configure_from_environment();
// A device was opened: its batch tracking starts afresh.
void device_opened(const apr_device& device);

// Called by each kernel after it has written its output: batch tracking and kernel-level faults.
void after_embed(const apr_device& device, const apr_embed_args& a);
void after_matmul(const apr_device& device, const apr_matmul_args& a);
void after_rope(const apr_device& device, const apr_rope_args& a);
void after_kv_store(const apr_device& device, const apr_kv_store_args& a);
void after_attention(const apr_device& device, const apr_attention_args& a);
void after_swiglu(const apr_device& device, const apr_swiglu_args& a);
// Called by trace_emit before it copies the view: the trace-emission faults.
void before_trace_emit(const apr_device& device, const apr_trace_emit_args& a);

// The rows of a kernel of n_rows rows in the device's current batch (for fused stages).
Rows rows_of(const apr_device& device, uint32_t n_rows);
// A fused stage's row r computed inside a kernel (attn_scores, attn_softmax, ffn_silu, ffn_gelu):
// its n values from column first_col on (a windowed attention row starts past column 0; the
// +-m pattern follows the row's own columns), perturbed when (stage, layer) is the faulty one and
// the conditions hold. Safe to call from the pool's threads.
void perturb_row(apr_stage stage, uint32_t layer, const Rows& rows, uint64_t r, float* data,
                 uint64_t n, uint64_t first_col = 0);
// Whether a fault targets a fused attention stage (attn_scores, attn_softmax) of this layer, so
// that the attention kernel must form those rows whole (its materialising path).
bool perturbs_attention_rows(uint32_t layer);
#else
inline void configure_from_environment() {}
inline void device_opened(const apr_device&) {}
inline void after_embed(const apr_device&, const apr_embed_args&) {}
inline void after_matmul(const apr_device&, const apr_matmul_args&) {}
inline void after_rope(const apr_device&, const apr_rope_args&) {}
inline void after_kv_store(const apr_device&, const apr_kv_store_args&) {}
inline void after_attention(const apr_device&, const apr_attention_args&) {}
inline void after_swiglu(const apr_device&, const apr_swiglu_args&) {}
inline void before_trace_emit(const apr_device&, const apr_trace_emit_args&) {}
inline Rows rows_of(const apr_device&, uint32_t) {
  return {};
}
inline void perturb_row(apr_stage, uint32_t, const Rows&, uint64_t, float*, uint64_t,
                        uint64_t = 0) {}
inline bool perturbs_attention_rows(uint32_t) {
  return false;
}
#endif

}  // namespace apr_cpu::fault
