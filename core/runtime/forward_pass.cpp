// SPDX-License-Identifier: MIT
#include "runtime/forward_pass.hpp"

#include <string>

#include "common/error.hpp"

namespace apr {

namespace {
constexpr uint64_t kF32 = sizeof(float);
}  // namespace

ForwardPass::ForwardPass(Device& device, const ModelConfig& config, const ModelWeights& weights,
                         ForwardPassOptions options)
    : d_(device), c_(config), w_(weights), kernels_(device, config, weights), opt_(options) {
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
  emit_stage(d_, stage, layer, buffer, offset_elems, rows, cols, stride);
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
  const StageKernels& k = kernels_;
  const uint32_t qkv = c.qkv_dim();

  k.embed(tokens, n, x_);
  emit(APR_STAGE_EMBEDDING, 0, x_, 0, n, c.n_embd, 0);
  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& w = w_.layers[l];
    k.rms_norm(w.attn_norm, x_, h_, n);
    emit(APR_STAGE_ATTN_NORM, l, h_, 0, n, c.n_embd, 0);
    k.qkv_matmul(l, h_, qkv_, n);
    emit(APR_STAGE_QKV_MATMUL, l, qkv_, 0, n, qkv, 0);
    if (c.has_qkv_bias) {
      k.qkv_bias(l, qkv_, n);
      emit(APR_STAGE_QKV_BIAS, l, qkv_, 0, n, qkv, 0);
    }
    if (c.has_qk_norm) {
      k.q_norm(l, qkv_, n);
      emit(APR_STAGE_Q_NORM, l, qkv_, 0, n, c.q_dim(), qkv);
      k.k_norm(l, qkv_, n);
      emit(APR_STAGE_K_NORM, l, qkv_, c.q_dim(), n, c.kv_dim(), qkv);
    }
    k.rope(l, qkv_, n, pos0);
    emit(APR_STAGE_Q_POST_ROPE, l, qkv_, 0, n, c.q_dim(), qkv);
    emit(APR_STAGE_K_POST_ROPE, l, qkv_, c.q_dim(), n, c.kv_dim(), qkv);
    k.kv_store(qkv_, n, pos0, kv_k_[l], kv_v_[l]);
    k.attention(l, qkv_, n, pos0, kv_k_[l], kv_v_[l], att_);
    emit(APR_STAGE_ATTENTION, l, att_, 0, n, c.q_dim(), 0);
    k.attn_out(l, att_, tmp_, n);
    emit(APR_STAGE_ATTN_OUT, l, tmp_, 0, n, c.n_embd, 0);
    if (c.has_post_norms) {
      k.rms_norm(w.post_attn_norm, tmp_, tmp_, n);
      emit(APR_STAGE_ATTN_POST_NORM, l, tmp_, 0, n, c.n_embd, 0);
    }
    k.residual(x_, tmp_, x_, n);
    emit(APR_STAGE_POST_ATTN_RESIDUAL, l, x_, 0, n, c.n_embd, 0);

    k.rms_norm(w.ffn_norm, x_, h_, n);
    emit(APR_STAGE_FFN_NORM, l, h_, 0, n, c.n_embd, 0);
    k.ffn_gate(l, h_, gate_, n);
    emit(APR_STAGE_FFN_GATE, l, gate_, 0, n, c.n_ff, 0);
    k.ffn_up(l, h_, up_, n);
    emit(APR_STAGE_FFN_UP, l, up_, 0, n, c.n_ff, 0);
    k.swiglu(l, gate_, up_, gate_, n);
    emit(c.ffn_activation == APR_ACT_GELU_TANH ? APR_STAGE_FFN_GEGLU : APR_STAGE_FFN_SWIGLU, l,
         gate_, 0, n, c.n_ff, 0);
    k.ffn_down(l, gate_, tmp_, n);
    emit(APR_STAGE_FFN_OUT, l, tmp_, 0, n, c.n_embd, 0);
    if (c.has_post_norms) {
      k.rms_norm(w.post_ffn_norm, tmp_, tmp_, n);
      emit(APR_STAGE_FFN_POST_NORM, l, tmp_, 0, n, c.n_embd, 0);
    }
    k.residual(x_, tmp_, x_, n);
    emit(APR_STAGE_POST_FFN_RESIDUAL, l, x_, 0, n, c.n_embd, 0);
  }
  k.rms_norm(w_.output_norm, x_, h_, n);
  emit(APR_STAGE_FINAL_NORM, APR_LAYER_NONE, h_, 0, n, c.n_embd, 0);

  // Generation needs only the last token's logits; perplexity needs every row's.
  const uint32_t head_rows = rows == LogitRows::kEvery ? n : 1;
  k.lm_head(h_, n - head_rows, head_rows, logits_);
  emit(APR_STAGE_LM_HEAD, APR_LAYER_NONE, logits_, uint64_t(head_rows - 1) * c.n_vocab, 1,
       c.n_vocab, 0);
}

}  // namespace apr
