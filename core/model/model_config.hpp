// SPDX-License-Identifier: MIT
// Hyper-parameters of a llama or qwen2 model, read from GGUF metadata (GGUF-FACTS §3).
#pragma once

#include <cstdint>
#include <string>

namespace apr::gguf {
class File;
}

namespace apr {

enum class Architecture { kLlama, kQwen2 };

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

  uint32_t q_dim() const { return n_head * head_dim; }
  uint32_t kv_dim() const { return n_head_kv * head_dim; }
  uint32_t qkv_dim() const { return q_dim() + 2 * kv_dim(); }

  // Reads and validates the metadata; throws apr::Error naming the key. Tensor-derived fields
  // (n_vocab, tied_output, biases) are filled by Model.
  static ModelConfig from_gguf(const gguf::File& file);
};

}  // namespace apr
