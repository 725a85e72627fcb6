// SPDX-License-Identifier: MIT
#include "runtime/session.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.hpp"
#include "quant/quant.hpp"

namespace apr {

namespace {

constexpr uint64_t kF32 = sizeof(float);

// Rows [first, first + count) of a matrix tensor (all of it by default), which the model keeps
// mapped for the session's lifetime, so plugins may use it in place.
apr_weight_desc weight_desc(const gguf::TensorInfo& t, uint64_t first = 0, uint64_t count = 0) {
  const uint64_t rows = t.ne[1];
  const uint64_t row_bytes = t.nbytes / rows;
  if (count == 0) count = rows;
  auto d = abi_struct<apr_weight_desc>();
  d.type = t.type;
  d.flags = APR_WEIGHT_DATA_PERSISTENT;
  d.n_cols = t.ne[0];
  d.n_rows = count;
  d.data = t.data + first * row_bytes;
  d.nbytes = count * row_bytes;
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
    for (const gguf::TensorInfo* m : t.matrices()) add(*m);
  return needs;
}

std::vector<OperationNeed> operation_needs(const ModelConfig& c) {
  std::vector<OperationNeed> needs;
  if (c.has_qk_norm) needs.push_back({APR_FEATURE_NORM_GROUPS, "per-head RMSNorm of Q and K"});
  if (!c.layer_is_swa.empty())
    needs.push_back({APR_FEATURE_ATTN_WINDOW, "sliding-window attention"});
  if (c.attn_softcap > 0)
    needs.push_back({APR_FEATURE_ATTN_SOFTCAP, "soft-capped attention scores"});
  if (c.ffn_activation == APR_ACT_GELU_TANH)
    needs.push_back({APR_FEATURE_GELU, "the GELU-gated feed-forward"});
  if (c.embd_scale > 0 || c.final_softcap > 0)
    needs.push_back({OperationNeed::kUnaryKernel, c.final_softcap > 0
                                                      ? "the unary kernel (logit soft-cap)"
                                                      : "the unary kernel (embedding scale)"});
  return needs;
}

BackendNeeds backend_needs(const Model& model) {
  return {weight_needs(model), operation_needs(model.config()), model.config().arch_name};
}

Session::Session(const Model& model, const host::Plugin& plugin, SessionOptions options)
    : model_(model), cfg_(model.config()) {
  n_ctx_ = options.n_ctx ? options.n_ctx : std::min<uint32_t>(cfg_.n_ctx_train, 4096);
  n_batch_ = std::max<uint32_t>(1, std::min(options.n_batch, n_ctx_));
  if (const gguf::TensorInfo* t = model.rope_factors_for(n_ctx_)) {
    // A 1.0 plugin would silently ignore the factors and compute wrong angles.
    if (plugin.abi_minor() < 1)
      throw Error("backend '" + std::string(plugin.name()) + "' speaks plugin ABI 1.0, but this " +
                  "model's " + t->name + " needs RoPE frequency factors (ABI 1.1)");
    weights_.rope_factors.resize(t->n_elements);
    quant::dequantize_row(t->type, t->data, weights_.rope_factors.data(), t->n_elements);
  }
  // Before any upload: a plugin that says it cannot take a weight type is refused with the
  // type and tensor named, not halfway through loading.
  const std::string unsupported =
      unsupported_needs(plugin, options.device_index, backend_needs(model));
  if (!unsupported.empty()) throw Error(unsupported);
  device_ = open_device(plugin, options.device_index, options.n_threads);
  const auto t0 = std::chrono::steady_clock::now();
  upload_weights();
  upload_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ForwardPassOptions fo;
  fo.n_ctx = n_ctx_;
  fo.max_rows = n_batch_;
  fo.logits_every_row = options.logits_every_row;
  pass_ = std::make_unique<ForwardPass>(*device_, cfg_, weights_, fo);
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
  ModelWeights& mw = weights_;
  mw.token_embd = device_->create_weight(weight_desc(model_.token_embd()));
  if (!cfg_.tied_output) mw.output = device_->create_weight(weight_desc(model_.output()));
  mw.output_norm = upload_vector(model_.output_norm());
  mw.layers.resize(cfg_.n_layer);
  for (uint32_t l = 0; l < cfg_.n_layer; ++l) {
    const LayerTensors& t = model_.layers()[l];
    LayerWeights& w = mw.layers[l];
    w.attn_norm = upload_vector(*t.attn_norm);
    w.ffn_norm = upload_vector(*t.ffn_norm);
    if (t.wqkv) {
      w.wqkv = device_->create_weight(weight_desc(*t.wqkv));
    } else {
      w.wq = device_->create_weight(weight_desc(*t.wq));
      w.wk = device_->create_weight(weight_desc(*t.wk));
      w.wv = device_->create_weight(weight_desc(*t.wv));
    }
    w.wo = device_->create_weight(weight_desc(*t.wo));
    if (t.w_gate) {
      w.w_gate = device_->create_weight(weight_desc(*t.w_gate));
      w.w_up = device_->create_weight(weight_desc(*t.w_up));
    } else {
      // phi3's fused matrix: gate is its first n_ff rows, up the rest; two views of one mapping.
      w.w_gate = device_->create_weight(weight_desc(*t.w_up, 0, cfg_.n_ff));
      w.w_up = device_->create_weight(weight_desc(*t.w_up, cfg_.n_ff, cfg_.n_ff));
    }
    w.w_down = device_->create_weight(weight_desc(*t.w_down));
    if (t.q_norm) w.q_norm = upload_vector(*t.q_norm);
    if (t.k_norm) w.k_norm = upload_vector(*t.k_norm);
    if (t.post_attn_norm) w.post_attn_norm = upload_vector(*t.post_attn_norm);
    if (t.post_ffn_norm) w.post_ffn_norm = upload_vector(*t.post_ffn_norm);
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
}

void Session::set_trace_sink(const apr_trace_sink* sink) {
  pass_->set_trace_sink(sink);
}

const std::vector<float>& Session::forward(std::span<const int32_t> tokens, LogitRows rows) {
  if (tokens.empty()) throw Error("forward pass needs at least one token");
  if (uint64_t(n_past_) + tokens.size() > n_ctx_)
    throw Error("context of " + std::to_string(n_ctx_) + " tokens exceeded: " +
                std::to_string(n_past_) + " used, " + std::to_string(tokens.size()) + " more");
  for (int32_t id : tokens)
    if (id < 0 || uint32_t(id) >= cfg_.n_vocab)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(cfg_.n_vocab));
  const bool every = rows == LogitRows::kEvery;
  logits_.resize(size_t(every ? tokens.size() : 1) * cfg_.n_vocab);
  for (size_t done = 0; done < tokens.size(); done += n_batch_) {
    const uint32_t n = static_cast<uint32_t>(std::min<size_t>(n_batch_, tokens.size() - done));
    pass_->run(tokens.data() + done, n, n_past_, rows);
    n_past_ += n;
    if (every) pass_->read_logits(logits_.data() + done * cfg_.n_vocab, n);
  }
  if (!every) pass_->read_logits(logits_.data(), 1);
  return logits_;
}

}  // namespace apr
