// SPDX-License-Identifier: MIT
// The device's kernel methods. The kit has checked every argument against plugin.h's rules
// (handles, views inside their buffers, overlaps, scalars); what is left here is what CUDA itself
// cannot do (grid and launch-parameter limits, answered APR_ERR_UNSUPPORTED) and the launches,
// which only enqueue work on the device's stream.
#include <cstring>
#include <limits>

#include "cuda_device.hpp"

#include <apr/plugin_sdk.hpp>  // after the handle types (see cuda_device.hpp)

using apr_cuda::check_cuda;
using apr_sdk::num;

namespace {

constexpr uint64_t kF32 = sizeof(float);
constexpr uint32_t kMaxGridY = 65535;
constexpr uint64_t kMaxU32 = std::numeric_limits<uint32_t>::max();

void check_launch(cudaError_t err, const std::string& kernel) {
  check_cuda(err, "launching " + kernel);
}

[[noreturn]] void unsupported(const std::string& message) {
  apr_sdk::fail(APR_ERR_UNSUPPORTED, message);
}

}  // namespace

void apr_device::embed(const apr_embed_args& a) {
  if (a.n_rows == 0) return;
  if (a.n_rows > kMaxGridY)
    unsupported(num(a.n_rows) + " rows in one call (at most " + num(kMaxGridY) + ")");
  select();
  const uint64_t id_bytes = uint64_t{a.n_rows} * sizeof(int32_t);
  // The pinned staging may still feed the previous call's copy; wait for that copy only.
  check_cuda(cudaEventSynchronize(ids_copied), "waiting for the previous token ids");
  void* host_ids = staging(ids_staging, id_bytes, "allocating token id staging");
  void* device_ids = scratch(ids_device, id_bytes, "allocating device token ids");
  std::memcpy(host_ids, a.token_ids, id_bytes);
  check_cuda(cudaMemcpyAsync(device_ids, host_ids, id_bytes, cudaMemcpyHostToDevice, stream),
             "copying token ids");
  check_cuda(cudaEventRecord(ids_copied, stream), "cudaEventRecord");
  check_launch(apr_cuda::launch_embed(a.table->device(), static_cast<const int32_t*>(device_ids),
                                      a.n_rows, a.out->at(a.out_offset), stream),
               "embed");
}

void apr_device::rms_norm(const apr_rms_norm_args& a) {
  // The ABI 1.3 members, defaulted for a 1.2 host's struct (one group, packed rows); the kit has
  // checked that the groups divide n_cols and the strided views lie in their buffers.
  const uint32_t stride = apr_sdk::norm_row_stride(a);
  const uint32_t groups = apr_sdk::norm_groups(a);
  if (uint64_t{a.n_rows} * groups > apr_cuda::kMaxRmsNormBlocks)
    unsupported(num(a.n_rows) + " rows of " + num(groups) + " groups in one call (at most " +
                num(apr_cuda::kMaxRmsNormBlocks) + " groups)");
  select();
  check_launch(apr_cuda::launch_rms_norm(a.x->at(a.x_offset), a.weight->at(a.weight_offset),
                                         a.out->at(a.out_offset), a.n_rows, a.n_cols, stride,
                                         groups, a.eps, stream),
               "rms_norm");
}

void apr_device::matmul(const apr_matmul_args& a) {
  const apr_weight& w = *a.weight;
  const std::string where = "weight '" + w.name + "'";
  // The launchers take 32-bit dimensions and strides.
  if (w.n_cols > kMaxU32 || w.n_rows > kMaxU32)
    unsupported(where + ": matrix dimensions above 2^32");
  if (a.n_rows > kMaxGridY * 64ull) unsupported(where + ": too many rows in one call");
  const uint32_t x_stride = a.x_row_stride ? a.x_row_stride : static_cast<uint32_t>(w.n_cols);
  const uint32_t y_stride = a.y_row_stride ? a.y_row_stride : static_cast<uint32_t>(w.n_rows);
  const float* bias = a.bias ? a.bias->at(a.bias_offset) : nullptr;
  select();
  check_launch(apr_cuda::launch_matmul(w.device(), a.x->at(a.x_offset), x_stride, a.n_rows, bias,
                                       a.y->at(a.y_offset), y_stride, stream),
               "matmul of " + where);
}

void apr_device::add(const apr_add_args& a) {
  const uint64_t period = a.b_period ? a.b_period : a.n;
  select();
  check_launch(apr_cuda::launch_add(a.a->at(a.a_offset), a.b->at(a.b_offset),
                                    a.out->at(a.out_offset), a.n, period, stream),
               "add");
}

void apr_device::rope(const apr_rope_args& a) {
  const uint64_t width = uint64_t{a.n_heads} * a.head_dim;
  if (width > kMaxU32) unsupported("n_heads * head_dim " + num(width) + " is above 2^32");
  const uint32_t stride = a.x_row_stride ? a.x_row_stride : static_cast<uint32_t>(width);
  apr_cuda::RopeParams p{stride, a.n_rows,    a.n_heads,    a.head_dim, a.n_rot, a.mode,
                         a.pos0, a.freq_base, a.freq_scale, 0,          {}};
  // The factors travel by value with the launch, so their number is bounded.
  if (APR_STRUCT_HAS(&a, apr_rope_args, freq_factors) && a.freq_factors) {
    if (a.n_rot / 2 > apr_cuda::kMaxRopePairs)
      unsupported("freq_factors for more than " + num(apr_cuda::kMaxRopePairs) + " pairs");
    std::memcpy(p.freq_factors, a.freq_factors, a.n_rot / 2 * sizeof(float));
    p.has_factors = 1;
  }
  select();
  check_launch(apr_cuda::launch_rope(a.x->at(a.x_offset), p, stream), "rope");
}

void apr_device::kv_store(const apr_kv_store_args& a) {
  if (a.n_rows == 0 || a.kv_dim == 0) return;
  const uint64_t stride = a.src_row_stride ? a.src_row_stride : a.kv_dim;
  const uint64_t row_bytes = uint64_t{a.kv_dim} * kF32;
  const uint64_t first = uint64_t{a.pos0} * row_bytes;
  select();
  check_cuda(cudaMemcpy2DAsync(a.k_cache->at(first), row_bytes, a.k->at(a.k_offset), stride * kF32,
                               row_bytes, a.n_rows, cudaMemcpyDeviceToDevice, stream),
             "copying k into the cache");
  check_cuda(cudaMemcpy2DAsync(a.v_cache->at(first), row_bytes, a.v->at(a.v_offset), stride * kF32,
                               row_bytes, a.n_rows, cudaMemcpyDeviceToDevice, stream),
             "copying v into the cache");
}

void apr_device::attention(const apr_attention_args& a) {
  if (a.head_dim > apr_cuda::kMaxHeadDim)
    unsupported("head_dim " + num(a.head_dim) + " is above " + num(apr_cuda::kMaxHeadDim));
  if (a.n_rows == 0) return;
  if (a.n_rows > kMaxGridY)
    unsupported(num(a.n_rows) + " rows in one call (at most " + num(kMaxGridY) + ")");
  const uint64_t width = uint64_t{a.n_heads} * a.head_dim;
  const uint64_t stride = a.q_row_stride ? a.q_row_stride : width;
  if (stride > kMaxU32) unsupported("q row stride " + num(stride) + " is above 2^32");
  // Window and soft-cap are per-call constants of the layer (0 for a 1.2 host: off); the kernels
  // derive each row's visible keys from pos0, window and the row.
  const apr_cuda::AttentionParams p{static_cast<uint32_t>(stride),
                                    a.n_rows,
                                    a.pos0,
                                    a.n_heads,
                                    a.n_kv_heads,
                                    a.head_dim,
                                    a.scale,
                                    apr_sdk::attention_window(a),
                                    apr_sdk::attention_softcap(a)};
  const float* q = a.q->at(a.q_offset);
  const float* k_cache = a.k_cache->at(0);
  const float* v_cache = a.v_cache->at(0);
  float* out = a.out->at(a.out_offset);
  select();
  const bool want_scores = wants(APR_STAGE_ATTN_SCORES, a.layer);
  const bool want_probs = wants(APR_STAGE_ATTN_SOFTMAX, a.layer);
  if (!want_scores && !want_probs) {
    check_launch(apr_cuda::launch_attention(q, k_cache, v_cache, out, p, stream), "attention");
    return;
  }
  // The tracing rule: the emitted scores and probabilities must be the ones the output is
  // computed from, so a traced call materialises them and derives the output from them instead
  // of running the fused online-softmax kernel.
  const uint64_t n_kv = uint64_t{a.pos0} + a.n_rows;
  uint64_t count = 0, bytes = 0;
  if (__builtin_mul_overflow(uint64_t{a.n_heads} * a.n_rows, n_kv, &count) ||
      __builtin_mul_overflow(count, 2 * kF32, &bytes))
    unsupported("traced attention scores of " + num(a.n_heads) + " x " + num(a.n_rows) + " x " +
                num(n_kv) + " overflow 64 bits");
  float* scores = static_cast<float*>(scratch(trace_scratch, bytes, "allocating trace scratch"));
  float* probs = scores + count;
  check_launch(apr_cuda::launch_attention_probe(q, k_cache, p, scores, probs, stream),
               "attention trace");
  check_launch(apr_cuda::launch_attention_apply(probs, v_cache, out, p, stream),
               "attention (traced)");
  const uint64_t shape[3] = {a.n_heads, a.n_rows, n_kv};
  if (want_scores) emit_view(APR_STAGE_ATTN_SCORES, a.layer, scores, 1, count, count, 3, shape);
  if (want_probs) emit_view(APR_STAGE_ATTN_SOFTMAX, a.layer, probs, 1, count, count, 3, shape);
}

void apr_device::swiglu(const apr_swiglu_args& a) {
  const uint64_t n = uint64_t{a.n_rows} * a.n_cols;
  const float* gate = a.gate->at(a.gate_offset);
  // silu for a 1.2 host's struct; the kit refused any activation but these two.
  const bool gelu = apr_sdk::gated_activation(a) == APR_ACT_GELU_TANH;
  const apr_cuda::GateActivation act =
      gelu ? apr_cuda::GateActivation::kGeluTanh : apr_cuda::GateActivation::kSilu;
  const apr_stage act_stage = gelu ? APR_STAGE_FFN_GELU : APR_STAGE_FFN_SILU;
  const char* const name = gelu ? "swiglu (gelu)" : "swiglu";
  select();
  // Before the fused kernel: out may overwrite gate. The same kernel instance computes the
  // activation bit for bit as the fused call does, so the emitted stage is the value used.
  if (n > 0 && wants(act_stage, a.layer)) {
    float* act_out =
        static_cast<float*>(scratch(trace_scratch, n * kF32, "allocating trace scratch"));
    check_launch(apr_cuda::launch_swiglu(gate, nullptr, act_out, n, act, stream),
                 std::string(name) + " trace");
    const uint64_t shape[2] = {a.n_rows, a.n_cols};
    emit_view(act_stage, a.layer, act_out, a.n_rows, a.n_cols, a.n_cols, 2, shape);
  }
  check_launch(
      apr_cuda::launch_swiglu(gate, a.up->at(a.up_offset), a.out->at(a.out_offset), n, act, stream),
      name);
}

void apr_device::unary(const apr_unary_args& a) {
  // The kit refused any other op and a soft-cap's alpha <= 0; grid-stride loops cover any n.
  const apr_cuda::UnaryOp op =
      a.op == APR_UNARY_SOFTCAP ? apr_cuda::UnaryOp::kSoftcap : apr_cuda::UnaryOp::kScale;
  select();
  check_launch(apr_cuda::launch_unary(op, a.alpha, a.x->at(a.x_offset), a.out->at(a.out_offset),
                                      a.n, stream),
               a.op == APR_UNARY_SOFTCAP ? "unary soft-cap" : "unary scale");
}

void apr_device::trace_emit(const apr_trace_emit_args& a) {
  if (!wants(a.stage, a.layer)) return;
  const uint32_t stride = a.row_stride ? a.row_stride : a.n_cols;
  uint64_t shape[2];
  const uint32_t ndim = apr_sdk::emitted_shape(a.stage, a.n_rows, a.n_cols, shape);
  select();
  emit_view(a.stage, a.layer, a.buffer->at(a.offset), a.n_rows, a.n_cols, stride, ndim, shape);
}
