// SPDX-License-Identifier: MIT
#include "model/model.hpp"

#include <string>

#include "common/error.hpp"
#include "quant/quant.hpp"

namespace apr {
namespace {

class TensorChecker {
 public:
  explicit TensorChecker(const gguf::File& f) : f_(f), fname_(f.path().filename().string()) {}

  // A tensor that must exist with shape [ne0] or [ne0, ne1].
  const gguf::TensorInfo* require(const std::string& name, uint64_t ne0, uint64_t ne1 = 0) const {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (!t) throw Error(fname_ + ": tensor '" + name + "' is missing");
    check(*t, ne0, ne1);
    return t;
  }

  const gguf::TensorInfo* optional(const std::string& name, uint64_t ne0, uint64_t ne1 = 0) const {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (t) check(*t, ne0, ne1);
    return t;
  }

 private:
  void check(const gguf::TensorInfo& t, uint64_t ne0, uint64_t ne1) const {
    bool ok = t.ne[0] == ne0 && t.ne[1] == (ne1 ? ne1 : 1) && t.ne[2] == 1 && t.ne[3] == 1;
    if (!ok) {
      std::string want = "[" + std::to_string(ne0) + (ne1 ? ", " + std::to_string(ne1) : "") + "]";
      throw Error(fname_ + ": tensor '" + t.name + "' has shape " + gguf::shape_string(t) +
                  ", expected " + want);
    }
    const quant::TypeInfo* info = quant::type_info(t.type);
    if (!info || !info->supported)
      throw Error(fname_ + ": tensor '" + t.name + "' has type " + quant::type_name(t.type) +
                  ", which apr cannot decode (supported: " + quant::supported_type_names() + ")");
  }

  const gguf::File& f_;
  std::string fname_;
};

}  // namespace

std::vector<const gguf::TensorInfo*> LayerTensors::matrices() const {
  std::vector<const gguf::TensorInfo*> out;
  for (const gguf::TensorInfo* t : {wq, wk, wv, wqkv, wo, w_gate, w_up, w_down})
    if (t) out.push_back(t);
  return out;
}

std::vector<const gguf::TensorInfo*> LayerTensors::all() const {
  std::vector<const gguf::TensorInfo*> out;
  for (const gguf::TensorInfo* t :
       {attn_norm, wq, wk, wv, wqkv, bq, bk, bv, wo, bo, ffn_norm, w_gate, w_up, w_down, q_norm,
        k_norm, post_attn_norm, post_ffn_norm})
    if (t) out.push_back(t);
  return out;
}

const gguf::TensorInfo* Model::rope_factors_for(uint32_t n_ctx) const {
  if (rope_freqs_) return rope_freqs_;
  if (rope_long_ && config_.n_ctx_orig && n_ctx > config_.n_ctx_orig) return rope_long_;
  return rope_short_;
}

std::unique_ptr<Model> Model::load(const std::filesystem::path& path, const LoadOptions& options) {
  auto m = std::unique_ptr<Model>(new Model());
  m->file_ = gguf::File::open(path);
  const gguf::File& f = *m->file_;
  const std::string fname = path.filename().string();
  m->config_ = ModelConfig::from_gguf(f);
  ModelConfig& c = m->config_;
  m->tokenizer_ = Tokenizer::from_gguf(f);
  c.n_vocab = static_cast<uint32_t>(m->tokenizer_->vocab_size());

  const TensorChecker tc(f);
  m->rope_freqs_ = tc.optional("rope_freqs.weight", c.n_rot / 2);
  m->rope_short_ = tc.optional("rope_factors_short.weight", c.n_rot / 2);
  m->rope_long_ = tc.optional("rope_factors_long.weight", c.n_rot / 2);
  c.fused_qkv = f.find_tensor("blk.0.attn_qkv.weight") && !f.find_tensor("blk.0.attn_q.weight");
  c.fused_gate_up = c.arch == Architecture::kPhi3 && !f.find_tensor("blk.0.ffn_gate.weight");
  if (const gguf::TensorInfo* e = f.find_tensor("token_embd.weight");
      e && e->n_dims == 2 && e->ne[0] == c.n_embd && e->ne[1] != c.n_vocab)
    throw Error(fname + ": tensor 'token_embd.weight' has " + std::to_string(e->ne[1]) +
                " rows but tokenizer.ggml.tokens has " + std::to_string(c.n_vocab) + " tokens");
  m->token_embd_ = tc.require("token_embd.weight", c.n_embd, c.n_vocab);
  m->output_norm_ = tc.require("output_norm.weight", c.n_embd);
  m->output_ = tc.optional("output.weight", c.n_embd, c.n_vocab);
  c.tied_output = m->output_ == nullptr;
  if (c.tied_output) m->output_ = m->token_embd_;

  for (uint32_t l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerTensors t;
    t.attn_norm = tc.require(p + "attn_norm.weight", c.n_embd);
    if (c.fused_qkv) {
      t.wqkv = tc.require(p + "attn_qkv.weight", c.n_embd, c.qkv_dim());
    } else {
      t.wq = tc.require(p + "attn_q.weight", c.n_embd, c.q_dim());
      t.wk = tc.require(p + "attn_k.weight", c.n_embd, c.kv_dim());
      t.wv = tc.require(p + "attn_v.weight", c.n_embd, c.kv_dim());
    }
    t.bq = tc.optional(p + "attn_q.bias", c.q_dim());
    t.bk = tc.optional(p + "attn_k.bias", c.kv_dim());
    t.bv = tc.optional(p + "attn_v.bias", c.kv_dim());
    const bool any_bias = t.bq || t.bk || t.bv;
    if (any_bias && !(t.bq && t.bk && t.bv))
      throw Error(fname + ": layer " + std::to_string(l) +
                  " has some but not all of attn_q/k/v.bias");
    if (l == 0) c.has_qkv_bias = any_bias;
    if (any_bias != c.has_qkv_bias)
      throw Error(fname + ": layer " + std::to_string(l) + " differs from layer 0 in QKV biases");
    t.wo = tc.require(p + "attn_output.weight", c.q_dim(), c.n_embd);
    t.bo = tc.optional(p + "attn_output.bias", c.n_embd);
    if (l == 0) c.has_output_bias = t.bo != nullptr;
    t.ffn_norm = tc.require(p + "ffn_norm.weight", c.n_embd);
    if (c.fused_gate_up) {
      t.w_up = tc.require(p + "ffn_up.weight", c.n_embd, 2 * uint64_t(c.n_ff));
    } else {
      t.w_gate = tc.require(p + "ffn_gate.weight", c.n_embd, c.n_ff);
      t.w_up = tc.require(p + "ffn_up.weight", c.n_embd, c.n_ff);
    }
    t.w_down = tc.require(p + "ffn_down.weight", c.n_ff, c.n_embd);
    if (c.has_qk_norm) {
      t.q_norm = tc.require(p + "attn_q_norm.weight", c.head_dim);
      t.k_norm = tc.require(p + "attn_k_norm.weight", c.head_dim);
    }
    if (c.has_post_norms) {
      t.post_attn_norm = tc.require(p + "post_attention_norm.weight", c.n_embd);
      t.post_ffn_norm = tc.require(p + "post_ffw_norm.weight", c.n_embd);
    }
    m->layers_.push_back(t);
  }
  check_model_values(*m, options);
  return m;
}

}  // namespace apr
