// SPDX-License-Identifier: MIT
#include "runtime/session.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.hpp"
#include "quant/quant.hpp"

namespace apr {

struct Session::LayerWeights {
  Buffer attn_norm, ffn_norm;
  Buffer qkv_bias;     // [bq | bk | bv], empty without biases
  Buffer output_bias;  // empty without attn_output.bias
  Weight wq, wk, wv, wo, w_gate, w_up, w_down;
};

namespace {

constexpr uint64_t kF32 = sizeof(float);

apr_weight_desc weight_desc(const gguf::TensorInfo& t) {
  auto d = abi_struct<apr_weight_desc>();
  d.type = t.type;
  // The model keeps the file mapped for the session's lifetime, so plugins may use it in place.
  d.flags = APR_WEIGHT_DATA_PERSISTENT;
  d.n_cols = t.ne[0];
  d.n_rows = t.ne[1];
  d.data = t.data;
  d.nbytes = t.nbytes;
  d.name = t.name.c_str();
  return d;
}

}  // namespace

std::vector<WeightNeed> weight_needs(const Model& model) {
  std::vector<WeightNeed> needs;
  auto add = [&](const gguf::TensorInfo& t) { needs.push_back({t.type, t.name}); };
  add(model.token_embd());
  if (!model.config().tied_output) add(model.output());
  for (const LayerTensors& t : model.layers())
    for (const gguf::TensorInfo* m : {t.wq, t.wk, t.wv, t.wo, t.w_gate, t.w_up, t.w_down}) add(*m);
  return needs;
}

Session::Session(const Model& model, const host::Plugin& plugin, SessionOptions options)
    : model_(model), cfg_(model.config()) {
  n_ctx_ = options.n_ctx ? options.n_ctx : std::min<uint32_t>(cfg_.n_ctx_train, 4096);
  n_batch_ = std::max<uint32_t>(1, std::min(options.n_batch, n_ctx_));
  if (const gguf::TensorInfo* t = model.rope_freqs()) {
    // A 1.0 plugin would silently ignore the factors and compute wrong angles.
    if (plugin.abi_minor() < 1)
      throw Error("backend '" + std::string(plugin.name()) +
                  "' speaks plugin ABI 1.0, but this model's rope_freqs.weight needs RoPE "
                  "frequency factors (ABI 1.1)");
    rope_factors_.resize(t->n_elements);
    quant::dequantize_row(t->type, t->data, rope_factors_.data(), t->n_elements);
  }
  // Before any upload: a plugin that says it cannot take a weight type is refused with the
  // type and tensor named, not halfway through loading.
  const std::string unsupported =
      unsupported_weights(plugin, options.device_index, weight_needs(model));
  if (!unsupported.empty()) throw Error(unsupported);
  device_ = open_device(plugin, options.device_index, options.n_threads);
  const auto t0 = std::chrono::steady_clock::now();
  upload_weights();
  upload_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Members declared after device_ (weights, buffers) are destroyed before it.
Session::~Session() = default;

Buffer Session::upload_vector(const gguf::TensorInfo& t) {
  std::vector<float> values(t.n_elements);
  quant::dequantize_row(t.type, t.data, values.data(), t.n_elements);
  Buffer b = device_->alloc(values.size() * kF32);
  device_->write(b, 0, values.data(), values.size() * kF32);
  return b;
}

void Session::upload_weights() {
  token_embd_ = device_->create_weight(weight_desc(model_.token_embd()));
  if (!cfg_.tied_output) output_ = device_->create_weight(weight_desc(model_.output()));
  output_norm_ = upload_vector(model_.output_norm());

  const uint64_t n_layer_cache = uint64_t(n_ctx_) * cfg_.kv_dim() * kF32;
  layers_.resize(cfg_.n_layer);
  for (uint32_t l = 0; l < cfg_.n_layer; ++l) {
    const LayerTensors& t = model_.layers()[l];
    LayerWeights& w = layers_[l];
    w.attn_norm = upload_vector(*t.attn_norm);
    w.ffn_norm = upload_vector(*t.ffn_norm);
    w.wq = device_->create_weight(weight_desc(*t.wq));
    w.wk = device_->create_weight(weight_desc(*t.wk));
    w.wv = device_->create_weight(weight_desc(*t.wv));
    w.wo = device_->create_weight(weight_desc(*t.wo));
    w.w_gate = device_->create_weight(weight_desc(*t.w_gate));
    w.w_up = device_->create_weight(weight_desc(*t.w_up));
    w.w_down = device_->create_weight(weight_desc(*t.w_down));
    if (cfg_.has_qkv_bias) {
      std::vector<float> bias(cfg_.qkv_dim());
      quant::dequantize_row(t.bq->type, t.bq->data, bias.data(), cfg_.q_dim());
      quant::dequantize_row(t.bk->type, t.bk->data, bias.data() + cfg_.q_dim(), cfg_.kv_dim());
      quant::dequantize_row(t.bv->type, t.bv->data, bias.data() + cfg_.q_dim() + cfg_.kv_dim(),
                            cfg_.kv_dim());
      w.qkv_bias = device_->alloc(bias.size() * kF32);
      device_->write(w.qkv_bias, 0, bias.data(), bias.size() * kF32);
    }
    if (t.bo) w.output_bias = upload_vector(*t.bo);
  }
  for (uint32_t l = 0; l < cfg_.n_layer; ++l) {
    kv_k_.push_back(device_->alloc(n_layer_cache));
    kv_v_.push_back(device_->alloc(n_layer_cache));
  }

  const uint64_t rows = n_batch_;
  x_ = device_->alloc(rows * cfg_.n_embd * kF32);
  h_ = device_->alloc(rows * cfg_.n_embd * kF32);
  tmp_ = device_->alloc(rows * cfg_.n_embd * kF32);
  qkv_ = device_->alloc(rows * cfg_.qkv_dim() * kF32);
  att_ = device_->alloc(rows * cfg_.q_dim() * kF32);
  gate_ = device_->alloc(rows * cfg_.n_ff * kF32);
  up_ = device_->alloc(rows * cfg_.n_ff * kF32);
  logits_dev_ = device_->alloc(uint64_t(cfg_.n_vocab) * kF32);
  if (device_->has_step_markers()) step_scalars_ = device_->alloc(APR_STEP_SCALARS_BYTES(n_batch_));
  logits_.resize(cfg_.n_vocab);
}

void Session::set_trace_sink(const apr_trace_sink* sink) {
  tracing_ = sink != nullptr;
  if (sink) sink_ = *sink;
  device_->set_trace_sink(sink ? &sink_ : nullptr);
}

void Session::emit(apr_stage stage, uint32_t layer, const Buffer& buffer, uint64_t offset_elems,
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
  device_->trace_emit(a);
}

const std::vector<float>& Session::forward(std::span<const int32_t> tokens) {
  if (tokens.empty()) throw Error("forward pass needs at least one token");
  if (uint64_t(n_past_) + tokens.size() > n_ctx_)
    throw Error("context of " + std::to_string(n_ctx_) + " tokens exceeded: " +
                std::to_string(n_past_) + " used, " + std::to_string(tokens.size()) + " more");
  for (int32_t id : tokens)
    if (id < 0 || uint32_t(id) >= cfg_.n_vocab)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(cfg_.n_vocab));
  for (size_t done = 0; done < tokens.size(); done += n_batch_) {
    const uint32_t n = static_cast<uint32_t>(std::min<size_t>(n_batch_, tokens.size() - done));
    run_step(tokens.data() + done, n);
  }
  device_->read(logits_dev_, 0, logits_.data(), logits_.size() * kF32);
  return logits_;
}

void Session::run_step(const int32_t* tokens, uint32_t n) {
  if (!step_scalars_.get() || tracing_) return run_batch(tokens, n);
  // The step's scalars in device memory, so a plugin can replay a recorded step (plugin.h).
  std::vector<uint32_t> words(APR_STEP_WORD_TOKENS + n, 0);
  words[APR_STEP_WORD_POS0] = n_past_;
  words[APR_STEP_WORD_N_KV] = n_past_ + n;
  words[APR_STEP_WORD_N_ROWS] = n;
  for (uint32_t i = 0; i < n; ++i) words[APR_STEP_WORD_TOKENS + i] = uint32_t(tokens[i]);
  device_->write(step_scalars_, 0, words.data(), words.size() * sizeof(uint32_t));
  auto step = abi_struct<apr_step_args>();
  step.shape_key = n;  // every buffer is the session's own: the row count fixes the calls
  step.scalars = step_scalars_.get();
  step.n_rows = n;
  step.pos0 = n_past_;
  device_->step_begin(step);
  try {
    run_batch(tokens, n);
  } catch (...) {
    step.flags = APR_STEP_DISCARD;
    try {
      device_->step_end(step);
    } catch (...) {
      // The first failure is the one worth reporting.
    }
    throw;
  }
  device_->step_end(step);
}

void Session::run_batch(const int32_t* tokens, uint32_t n) {
  const ModelConfig& c = cfg_;
  const uint32_t pos0 = n_past_;
  Device& d = *device_;

  auto embed = abi_struct<apr_embed_args>();
  embed.table = token_embd_.get();
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

  auto matmul = [&](const Weight& w, const Buffer& x, uint32_t x_stride, const Buffer& y,
                    uint64_t y_col, uint32_t y_stride, const Buffer* bias) {
    auto m = abi_struct<apr_matmul_args>();
    m.weight = w.get();
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
    LayerWeights& w = layers_[l];

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
    rope.freq_factors = rope_factors_.empty() ? nullptr : rope_factors_.data();
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

  norm.weight = output_norm_.get();
  d.rms_norm(norm);
  emit(APR_STAGE_FINAL_NORM, APR_LAYER_NONE, h_, 0, n, c.n_embd, 0);

  // Only the last token's logits are needed to continue the sequence.
  auto head = abi_struct<apr_matmul_args>();
  head.weight = cfg_.tied_output ? token_embd_.get() : output_.get();
  head.x = h_.get();
  head.x_offset = uint64_t(n - 1) * c.n_embd * kF32;
  head.n_rows = 1;
  head.y = logits_dev_.get();
  d.matmul(head);
  emit(APR_STAGE_LM_HEAD, APR_LAYER_NONE, logits_dev_, 0, 1, c.n_vocab, 0);

  n_past_ += n;
}

}  // namespace apr
