// SPDX-License-Identifier: MIT
// Hyper-parameters of a model of one of the families apr runs (llama, qwen2, qwen3, gemma2,
// gemma3, phi3), read from GGUF metadata as llama.cpp's converter writes it, and what the family
// implies beyond it (docs/PLUGIN-ABI.md, "Model families").
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <string>
#include <vector>

namespace apr::gguf {
class File;
}

namespace apr {

enum class Architecture { kLlama, kQwen2, kQwen3, kGemma2, kGemma3, kPhi3 };

// "llama, qwen2, qwen3, gemma2, gemma3, phi3": the GGUF architectures apr runs, for messages.
const char* supported_architectures();

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  std::string arch_name;
  std::string name;  // general.name, if any
  uint32_t n_embd = 0;
  uint32_t n_layer = 0;
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t head_dim = 0;
  uint32_t n_ff = 0;
  uint32_t n_vocab = 0;
  uint32_t n_ctx_train = 0;
  uint32_t n_rot = 0;
  float rms_eps = 0;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;
  uint32_t rope_mode = 0;  // APR_ROPE_*
  bool tied_output = false;
  bool has_qkv_bias = false;
  bool has_output_bias = false;

  // ---- newer families (ABI 1.3 operations)
  bool has_qk_norm = false;     // qwen3, gemma3: per-head RMSNorm of Q and K before RoPE
  bool has_post_norms = false;  // gemma2, gemma3: RMSNorm of attn_out and ffn_out ("sandwich")
  uint32_t ffn_activation = APR_ACT_SILU;  // gemma: APR_ACT_GELU_TANH
  float embd_scale = 0;            // > 0: embeddings are multiplied by it (gemma: sqrt(n_embd))
  float attn_scale = 0;            // the query scale; 0: 1/sqrt(head_dim) (query_scale())
  float attn_softcap = 0;          // gemma2: attention scores soft-capped at this
  float final_softcap = 0;         // gemma2 (gemma3 optional): logits soft-capped at this
  uint32_t sliding_window = 0;     // keys a sliding-window layer sees; 0: none
  std::vector<bool> layer_is_swa;  // per layer; empty when no layer slides
  float rope_freq_base_swa = 10000.0f;  // RoPE of the sliding-window layers
  float rope_freq_scale_swa = 1.0f;
  // phi3 LongRoPE: the magnitude factor of cos and sin; apr folds it into attn_scale (squared),
  // since rotating Q and K both by m scales q.k by m^2 and nothing else.
  float rope_attn_factor = 1.0f;
  uint32_t n_ctx_orig = 0;  // phi3: the context the short RoPE factors serve (0: unknown)
  // Tensor-derived (filled by Model): phi3 stores Q, K, V in one matrix and gate and up in one.
  bool fused_qkv = false;
  bool fused_gate_up = false;

  uint32_t q_dim() const { return n_head * head_dim; }
  uint32_t kv_dim() const { return n_head_kv * head_dim; }
  uint32_t qkv_dim() const { return q_dim() + 2 * kv_dim(); }

  float query_scale() const;
  // 1/sqrt(head_dim): the query scale of every family but the exceptions read_family names.
  static float default_query_scale(uint32_t head_dim);
  bool is_swa(uint32_t layer) const { return layer < layer_is_swa.size() && layer_is_swa[layer]; }
  uint32_t layer_window(uint32_t layer) const { return is_swa(layer) ? sliding_window : 0; }
  float layer_rope_base(uint32_t layer) const {
    return is_swa(layer) ? rope_freq_base_swa : rope_freq_base;
  }
  float layer_rope_scale(uint32_t layer) const {
    return is_swa(layer) ? rope_freq_scale_swa : rope_freq_scale;
  }
  // Whether the forward pass of this model produces `stage` (qkv_bias only with biases, the
  // stages of ABI 1.3 only in the families that have the operation). Inline: the trace format
  // library asks it without linking the model library.
  bool has_stage(apr_stage stage) const {
    switch (stage) {
      case APR_STAGE_QKV_BIAS:
        return has_qkv_bias;
      case APR_STAGE_Q_NORM:
      case APR_STAGE_K_NORM:
        return has_qk_norm;
      case APR_STAGE_ATTN_POST_NORM:
      case APR_STAGE_FFN_POST_NORM:
        return has_post_norms;
      case APR_STAGE_FFN_SILU:
      case APR_STAGE_FFN_SWIGLU:
        return ffn_activation == APR_ACT_SILU;
      case APR_STAGE_FFN_GELU:
      case APR_STAGE_FFN_GEGLU:
        return ffn_activation == APR_ACT_GELU_TANH;
      default:
        return stage < APR_STAGE_COUNT_V1_3;
    }
  }

  // Reads and validates the metadata; throws apr::Error naming the key. Tensor-derived fields
  // (n_vocab, tied_output, biases) are filled by Model.
  static ModelConfig from_gguf(const gguf::File& file);
};

}  // namespace apr
