// SPDX-License-Identifier: MIT
#include "runtime/stage_kernels.hpp"

namespace apr {

namespace {
constexpr uint64_t kF32 = sizeof(float);
}  // namespace

void emit_stage(Device& device, apr_stage stage, uint32_t layer, const Buffer& buffer,
                uint64_t offset, uint32_t rows, uint32_t cols, uint32_t stride) {
  auto a = abi_struct<apr_trace_emit_args>();
  a.stage = stage;
  a.layer = layer;
  a.buffer = buffer.get();
  a.offset = offset * kF32;
  a.n_rows = rows;
  a.n_cols = cols;
  a.row_stride = stride;
  device.trace_emit(a);
}

void StageKernels::matmul(const Weight& w, const Buffer& x, const Buffer& y, uint64_t y_col,
                          uint32_t y_stride, uint32_t n, const Buffer* bias) const {
  auto m = abi_struct<apr_matmul_args>();
  m.weight = w.get();
  m.x = x.get();
  m.n_rows = n;
  m.bias = (bias && bias->get()) ? bias->get() : nullptr;
  m.y = y.get();
  m.y_offset = y_col * kF32;
  m.y_row_stride = y_stride;
  d_.matmul(m);
}

void StageKernels::embed(const int32_t* tokens, uint32_t n, const Buffer& out) const {
  auto a = abi_struct<apr_embed_args>();
  a.table = w_.token_embd.get();
  a.token_ids = tokens;
  a.n_rows = n;
  a.out = out.get();
  d_.embed(a);
  if (c_.embd_scale > 0) unary(APR_UNARY_SCALE, c_.embd_scale, out, uint64_t(n) * c_.n_embd);
}

void StageKernels::unary(uint32_t op, float alpha, const Buffer& x, uint64_t n) const {
  auto a = abi_struct<apr_unary_args>();
  a.op = op;
  a.alpha = alpha;
  a.x = x.get();
  a.out = x.get();
  a.n = n;
  d_.unary(a);
}

void StageKernels::rms_norm(const Buffer& weight, const Buffer& x, const Buffer& out,
                            uint32_t n) const {
  auto a = abi_struct<apr_rms_norm_args>();
  a.x = x.get();
  a.weight = weight.get();
  a.out = out.get();
  a.n_rows = n;
  a.n_cols = c_.n_embd;
  a.eps = c_.rms_eps;
  d_.rms_norm(a);
}

void StageKernels::qkv_matmul(uint32_t layer, const Buffer& h, const Buffer& qkv,
                              uint32_t n) const {
  const LayerWeights& w = w_.layers[layer];
  const uint32_t stride = c_.qkv_dim();
  if (w.wqkv.get()) return matmul(w.wqkv, h, qkv, 0, stride, n, nullptr);
  matmul(w.wq, h, qkv, 0, stride, n, nullptr);
  matmul(w.wk, h, qkv, c_.q_dim(), stride, n, nullptr);
  matmul(w.wv, h, qkv, c_.q_dim() + c_.kv_dim(), stride, n, nullptr);
}

void StageKernels::qkv_bias(uint32_t layer, const Buffer& qkv, uint32_t n) const {
  auto a = abi_struct<apr_add_args>();
  a.a = qkv.get();
  a.b = w_.layers[layer].qkv_bias.get();
  a.out = qkv.get();
  a.n = uint64_t(n) * c_.qkv_dim();
  a.b_period = c_.qkv_dim();
  d_.add(a);
}

void StageKernels::head_norm(const Buffer& weight, const Buffer& qkv, uint64_t col, uint32_t heads,
                             uint32_t n) const {
  auto a = abi_struct<apr_rms_norm_args>();
  a.x = qkv.get();
  a.x_offset = col * kF32;
  a.weight = weight.get();
  a.out = qkv.get();
  a.out_offset = col * kF32;
  a.n_rows = n;
  a.n_cols = heads * c_.head_dim;
  a.eps = c_.rms_eps;
  a.row_stride = c_.qkv_dim();
  a.n_groups = heads;
  d_.rms_norm(a);
}

void StageKernels::q_norm(uint32_t layer, const Buffer& qkv, uint32_t n) const {
  head_norm(w_.layers[layer].q_norm, qkv, 0, c_.n_head, n);
}

void StageKernels::k_norm(uint32_t layer, const Buffer& qkv, uint32_t n) const {
  head_norm(w_.layers[layer].k_norm, qkv, c_.q_dim(), c_.n_head_kv, n);
}

void StageKernels::rope(uint32_t layer, const Buffer& qkv, uint32_t n, uint32_t pos0) const {
  auto a = abi_struct<apr_rope_args>();
  a.x = qkv.get();
  a.x_row_stride = c_.qkv_dim();
  a.n_rows = n;
  a.head_dim = c_.head_dim;
  a.n_rot = c_.n_rot;
  a.mode = c_.rope_mode;
  a.pos0 = pos0;
  a.freq_base = c_.layer_rope_base(layer);
  a.freq_scale = c_.layer_rope_scale(layer);
  a.freq_factors = w_.rope_factors.empty() ? nullptr : w_.rope_factors.data();
  a.n_heads = c_.n_head;
  d_.rope(a);
  a.x_offset = uint64_t(c_.q_dim()) * kF32;
  a.n_heads = c_.n_head_kv;
  d_.rope(a);
}

void StageKernels::kv_store(const Buffer& qkv, uint32_t n, uint32_t pos0, const Buffer& k_cache,
                            const Buffer& v_cache) const {
  auto a = abi_struct<apr_kv_store_args>();
  a.k = qkv.get();
  a.k_offset = uint64_t(c_.q_dim()) * kF32;
  a.v = qkv.get();
  a.v_offset = uint64_t(c_.q_dim() + c_.kv_dim()) * kF32;
  a.src_row_stride = c_.qkv_dim();
  a.n_rows = n;
  a.kv_dim = c_.kv_dim();
  a.pos0 = pos0;
  a.k_cache = k_cache.get();
  a.v_cache = v_cache.get();
  d_.kv_store(a);
}

void StageKernels::attention(uint32_t layer, const Buffer& qkv, uint32_t n, uint32_t pos0,
                             const Buffer& k_cache, const Buffer& v_cache,
                             const Buffer& out) const {
  auto a = abi_struct<apr_attention_args>();
  a.q = qkv.get();
  a.q_row_stride = c_.qkv_dim();
  a.n_rows = n;
  a.pos0 = pos0;
  a.n_heads = c_.n_head;
  a.n_kv_heads = c_.n_head_kv;
  a.head_dim = c_.head_dim;
  a.scale = c_.query_scale();
  a.layer = layer;
  a.k_cache = k_cache.get();
  a.v_cache = v_cache.get();
  a.out = out.get();
  a.window = c_.layer_window(layer);
  a.softcap = c_.attn_softcap;
  d_.attention(a);
}

void StageKernels::attn_out(uint32_t layer, const Buffer& attention, const Buffer& out,
                            uint32_t n) const {
  const LayerWeights& w = w_.layers[layer];
  matmul(w.wo, attention, out, 0, 0, n, &w.output_bias);
}

void StageKernels::residual(const Buffer& a, const Buffer& b, const Buffer& out, uint32_t n) const {
  auto args = abi_struct<apr_add_args>();
  args.a = a.get();
  args.b = b.get();
  args.out = out.get();
  args.n = uint64_t(n) * c_.n_embd;
  d_.add(args);
}

void StageKernels::ffn_gate(uint32_t layer, const Buffer& h, const Buffer& gate, uint32_t n) const {
  matmul(w_.layers[layer].w_gate, h, gate, 0, 0, n, nullptr);
}

void StageKernels::ffn_up(uint32_t layer, const Buffer& h, const Buffer& up, uint32_t n) const {
  matmul(w_.layers[layer].w_up, h, up, 0, 0, n, nullptr);
}

void StageKernels::swiglu(uint32_t layer, const Buffer& gate, const Buffer& up, const Buffer& out,
                          uint32_t n) const {
  auto a = abi_struct<apr_swiglu_args>();
  a.gate = gate.get();
  a.up = up.get();
  a.out = out.get();
  a.n_rows = n;
  a.n_cols = c_.n_ff;
  a.layer = layer;
  a.activation = c_.ffn_activation;
  d_.swiglu(a);
}

void StageKernels::ffn_down(uint32_t layer, const Buffer& in, const Buffer& out, uint32_t n) const {
  matmul(w_.layers[layer].w_down, in, out, 0, 0, n, nullptr);
}

void StageKernels::lm_head(const Buffer& h, uint32_t first_row, uint32_t rows,
                           const Buffer& logits) const {
  auto a = abi_struct<apr_matmul_args>();
  a.weight = c_.tied_output ? w_.token_embd.get() : w_.output.get();
  a.x = h.get();
  a.x_offset = uint64_t(first_row) * c_.n_embd * kF32;
  a.n_rows = rows;
  a.y = logits.get();
  d_.matmul(a);
  if (c_.final_softcap > 0)
    unary(APR_UNARY_SOFTCAP, c_.final_softcap, logits, uint64_t(rows) * c_.n_vocab);
}

}  // namespace apr
