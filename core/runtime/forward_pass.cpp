// SPDX-License-Identifier: MIT
#include "runtime/forward_pass.hpp"

#include <cmath>
#include <string>

#include "common/error.hpp"

namespace apr {

namespace {
constexpr uint64_t kF32 = sizeof(float);
}  // namespace

ForwardPass::ForwardPass(Device& device, const ModelConfig& config, const ModelWeights& weights,
                         ForwardPassOptions options)
    : d_(device), c_(config), w_(weights), opt_(options) {
  if (opt_.n_ctx == 0 || opt_.max_rows == 0 || opt_.max_rows > opt_.n_ctx)
    throw Error("forward pass needs 1 <= rows per batch <= context positions");
  const uint64_t layer_cache = uint64_t(opt_.n_ctx) * c_.kv_dim() * kF32;
  for (uint32_t l = 0; l < c_.n_layer; ++l) {
    kv_k_.push_back(d_.alloc(layer_cache));
    kv_v_.push_back(d_.alloc(layer_cache));
  }
  const uint64_t rows = opt_.max_rows;
  x_ = d_.alloc(rows * c_.n_embd * kF32);
  h_ = d_.alloc(rows * c_.n_embd * kF32);
  tmp_ = d_.alloc(rows * c_.n_embd * kF32);
  qkv_ = d_.alloc(rows * c_.qkv_dim() * kF32);
  att_ = d_.alloc(rows * c_.q_dim() * kF32);
  gate_ = d_.alloc(rows * c_.n_ff * kF32);
  up_ = d_.alloc(rows * c_.n_ff * kF32);
  logits_ = d_.alloc((opt_.logits_every_row ? rows : 1) * c_.n_vocab * kF32);
  if (opt_.step_markers && d_.has_step_markers())
    step_scalars_ = d_.alloc(APR_STEP_SCALARS_BYTES(opt_.max_rows));
}

void ForwardPass::read_logits(float* dst, uint32_t rows) {
  d_.read(logits_, 0, dst, uint64_t(rows) * c_.n_vocab * kF32);
}

void ForwardPass::set_trace_sink(const apr_trace_sink* sink) {
  tracing_ = sink != nullptr;
  if (sink) sink_ = *sink;
  d_.set_trace_sink(sink ? &sink_ : nullptr);
}

void ForwardPass::emit(apr_stage stage, uint32_t layer, const Buffer& buffer, uint64_t offset_elems,
                       uint32_t rows, uint32_t cols, uint32_t stride) {
  if (!tracing_ || !sink_.wants(sink_.user_data, stage, layer)) return;
  auto a = abi_struct<apr_trace_emit_args>();
  a.stage = stage;
  a.layer = layer;
  a.buffer = buffer.get();
  a.offset = offset_elems * kF32;
  a.n_rows = rows;
  a.n_cols = cols;
  a.row_stride = stride;
  d_.trace_emit(a);
}

void ForwardPass::run(const int32_t* tokens, uint32_t n, uint32_t pos0, LogitRows rows) {
  if (n == 0 || n > opt_.max_rows || uint64_t(pos0) + n > opt_.n_ctx)
    throw Error("forward pass of " + std::to_string(n) + " rows at position " +
                std::to_string(pos0) + " does not fit (" + std::to_string(opt_.max_rows) +
                " rows, " + std::to_string(opt_.n_ctx) + " positions)");
  if (rows == LogitRows::kEvery && !opt_.logits_every_row)
    throw Error("forward pass: logits of every row were not provided for");
  if (!step_scalars_.get() || tracing_) return run_batch(tokens, n, pos0, rows);
  // The step's scalars in device memory, so a plugin can replay a recorded step (plugin.h).
  std::vector<uint32_t> words(APR_STEP_WORD_TOKENS + n, 0);
  words[APR_STEP_WORD_POS0] = pos0;
  words[APR_STEP_WORD_N_KV] = pos0 + n;
  words[APR_STEP_WORD_N_ROWS] = n;
  for (uint32_t i = 0; i < n; ++i) words[APR_STEP_WORD_TOKENS + i] = uint32_t(tokens[i]);
  d_.write(step_scalars_, 0, words.data(), words.size() * sizeof(uint32_t));
  auto step = abi_struct<apr_step_args>();
  step.shape_key = n;  // every buffer is the session's own: the row count fixes the calls
  step.scalars = step_scalars_.get();
  step.n_rows = n;
  step.pos0 = pos0;
  d_.step_begin(step);
  try {
    run_batch(tokens, n, pos0, rows);
  } catch (...) {
    step.flags = APR_STEP_DISCARD;
    try {
      d_.step_end(step);
    } catch (...) {
      // The first failure is the one worth reporting.
    }
    throw;
  }
  d_.step_end(step);
}

void ForwardPass::run_batch(const int32_t* tokens, uint32_t n, uint32_t pos0, LogitRows rows) {
  const ModelConfig& c = c_;
  Device& d = d_;

  auto embed = abi_struct<apr_embed_args>();
  embed.table = w_.token_embd.get();
  embed.token_ids = tokens;
  embed.n_rows = n;
  embed.out = x_.get();
  d.embed(embed);
  emit(APR_STAGE_EMBEDDING, 0, x_, 0, n, c.n_embd, 0);

  auto norm = abi_struct<apr_rms_norm_args>();
  norm.x = x_.get();
  norm.out = h_.get();
  norm.n_rows = n;
  norm.n_cols = c.n_embd;
  norm.eps = c.rms_eps;

  auto matmul = [&](const Weight& wt, const Buffer& x, uint32_t x_stride, const Buffer& y,
                    uint64_t y_col, uint32_t y_stride, const Buffer* bias) {
    auto m = abi_struct<apr_matmul_args>();
    m.weight = wt.get();
    m.x = x.get();
    m.x_row_stride = x_stride;
    m.n_rows = n;
    m.bias = (bias && bias->get()) ? bias->get() : nullptr;
    m.y = y.get();
    m.y_offset = y_col * kF32;
    m.y_row_stride = y_stride;
    d.matmul(m);
  };
  auto residual = [&](apr_stage stage, uint32_t layer) {
    auto a = abi_struct<apr_add_args>();
    a.a = x_.get();
    a.b = tmp_.get();
    a.out = x_.get();
    a.n = uint64_t(n) * c.n_embd;
    d.add(a);
    emit(stage, layer, x_, 0, n, c.n_embd, 0);
  };

  const uint32_t qkv = c.qkv_dim();
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = w_.layers[l];

    norm.weight = w.attn_norm.get();
    d.rms_norm(norm);
    emit(APR_STAGE_ATTN_NORM, l, h_, 0, n, c.n_embd, 0);

    // Q, K and V land side by side in one [q|k|v] row per token.
    matmul(w.wq, h_, 0, qkv_, 0, qkv, nullptr);
    matmul(w.wk, h_, 0, qkv_, c.q_dim(), qkv, nullptr);
    matmul(w.wv, h_, 0, qkv_, c.q_dim() + c.kv_dim(), qkv, nullptr);
    emit(APR_STAGE_QKV_MATMUL, l, qkv_, 0, n, qkv, 0);
    if (c.has_qkv_bias) {
      auto a = abi_struct<apr_add_args>();
      a.a = qkv_.get();
      a.b = w.qkv_bias.get();
      a.out = qkv_.get();
      a.n = uint64_t(n) * qkv;
      a.b_period = qkv;
      d.add(a);
      emit(APR_STAGE_QKV_BIAS, l, qkv_, 0, n, qkv, 0);
    }

    auto rope = abi_struct<apr_rope_args>();
    rope.x = qkv_.get();
    rope.x_row_stride = qkv;
    rope.n_rows = n;
    rope.head_dim = c.head_dim;
    rope.n_rot = c.n_rot;
    rope.mode = c.rope_mode;
    rope.pos0 = pos0;
    rope.freq_base = c.rope_freq_base;
    rope.freq_scale = c.rope_freq_scale;
    rope.freq_factors = w_.rope_factors.empty() ? nullptr : w_.rope_factors.data();
    rope.n_heads = c.n_head;
    d.rope(rope);
    rope.x_offset = uint64_t(c.q_dim()) * kF32;
    rope.n_heads = c.n_head_kv;
    d.rope(rope);
    emit(APR_STAGE_Q_POST_ROPE, l, qkv_, 0, n, c.q_dim(), qkv);
    emit(APR_STAGE_K_POST_ROPE, l, qkv_, c.q_dim(), n, c.kv_dim(), qkv);

    auto store = abi_struct<apr_kv_store_args>();
    store.k = qkv_.get();
    store.k_offset = uint64_t(c.q_dim()) * kF32;
    store.v = qkv_.get();
    store.v_offset = uint64_t(c.q_dim() + c.kv_dim()) * kF32;
    store.src_row_stride = qkv;
    store.n_rows = n;
    store.kv_dim = c.kv_dim();
    store.pos0 = pos0;
    store.k_cache = kv_k_[l].get();
    store.v_cache = kv_v_[l].get();
    d.kv_store(store);

    auto attn = abi_struct<apr_attention_args>();
    attn.q = qkv_.get();
    attn.q_row_stride = qkv;
    attn.n_rows = n;
    attn.pos0 = pos0;
    attn.n_heads = c.n_head;
    attn.n_kv_heads = c.n_head_kv;
    attn.head_dim = c.head_dim;
    attn.scale = static_cast<float>(1.0 / std::sqrt(double(c.head_dim)));
    attn.layer = l;
    attn.k_cache = kv_k_[l].get();
    attn.v_cache = kv_v_[l].get();
    attn.out = att_.get();
    d.attention(attn);
    emit(APR_STAGE_ATTENTION, l, att_, 0, n, c.q_dim(), 0);

    matmul(w.wo, att_, 0, tmp_, 0, 0, &w.output_bias);
    emit(APR_STAGE_ATTN_OUT, l, tmp_, 0, n, c.n_embd, 0);
    residual(APR_STAGE_POST_ATTN_RESIDUAL, l);

    norm.weight = w.ffn_norm.get();
    d.rms_norm(norm);
    emit(APR_STAGE_FFN_NORM, l, h_, 0, n, c.n_embd, 0);

    matmul(w.w_gate, h_, 0, gate_, 0, 0, nullptr);
    emit(APR_STAGE_FFN_GATE, l, gate_, 0, n, c.n_ff, 0);
    matmul(w.w_up, h_, 0, up_, 0, 0, nullptr);
    emit(APR_STAGE_FFN_UP, l, up_, 0, n, c.n_ff, 0);

    auto swiglu = abi_struct<apr_swiglu_args>();
    swiglu.gate = gate_.get();
    swiglu.up = up_.get();
    swiglu.out = gate_.get();
    swiglu.n_rows = n;
    swiglu.n_cols = c.n_ff;
    swiglu.layer = l;
    d.swiglu(swiglu);
    emit(APR_STAGE_FFN_SWIGLU, l, gate_, 0, n, c.n_ff, 0);

    matmul(w.w_down, gate_, 0, tmp_, 0, 0, nullptr);
    emit(APR_STAGE_FFN_OUT, l, tmp_, 0, n, c.n_embd, 0);
    residual(APR_STAGE_POST_FFN_RESIDUAL, l);
  }

  norm.weight = w_.output_norm.get();
  d.rms_norm(norm);
  emit(APR_STAGE_FINAL_NORM, APR_LAYER_NONE, h_, 0, n, c.n_embd, 0);

  // Generation needs only the last token's logits; perplexity needs every row's.
  const uint32_t head_rows = rows == LogitRows::kEvery ? n : 1;
  auto head = abi_struct<apr_matmul_args>();
  head.weight = c.tied_output ? w_.token_embd.get() : w_.output.get();
  head.x = h_.get();
  head.x_offset = uint64_t(n - head_rows) * c.n_embd * kF32;
  head.n_rows = head_rows;
  head.y = logits_.get();
  d.matmul(head);
  emit(APR_STAGE_LM_HEAD, APR_LAYER_NONE, logits_, uint64_t(head_rows - 1) * c.n_vocab, 1,
       c.n_vocab, 0);
}

}  // namespace apr
