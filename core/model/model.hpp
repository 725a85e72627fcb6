// SPDX-License-Identifier: MIT
// A model mapped from a GGUF file: its configuration, tokenizer and the tensors of every layer,
// each checked for presence, shape and a type apr can decode.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "gguf/gguf_file.hpp"
#include "model/model_checks.hpp"
#include "model/model_config.hpp"
#include "tokenizer/tokenizer.hpp"

namespace apr {

struct LayerTensors {
  const gguf::TensorInfo* attn_norm = nullptr;
  const gguf::TensorInfo* wq = nullptr;  // wq, wk, wv are null when wqkv holds them (phi3)
  const gguf::TensorInfo* wk = nullptr;
  const gguf::TensorInfo* wv = nullptr;
  const gguf::TensorInfo* wqkv = nullptr;  // phi3: [q|k|v] rows in one matrix
  const gguf::TensorInfo* bq = nullptr;    // qwen2 only
  const gguf::TensorInfo* bk = nullptr;
  const gguf::TensorInfo* bv = nullptr;
  const gguf::TensorInfo* wo = nullptr;
  const gguf::TensorInfo* bo = nullptr;  // optional
  const gguf::TensorInfo* ffn_norm = nullptr;
  const gguf::TensorInfo* w_gate = nullptr;  // null when w_up holds gate and up (phi3)
  const gguf::TensorInfo* w_up = nullptr;    // phi3: 2 n_ff rows, gate's first
  const gguf::TensorInfo* w_down = nullptr;
  const gguf::TensorInfo* q_norm = nullptr;  // qwen3, gemma3: [head_dim]
  const gguf::TensorInfo* k_norm = nullptr;
  const gguf::TensorInfo* post_attn_norm = nullptr;  // gemma2, gemma3: [n_embd]
  const gguf::TensorInfo* post_ffn_norm = nullptr;

  // The matrices of the layer (those present), for checks and weight-type needs.
  std::vector<const gguf::TensorInfo*> matrices() const;
  // Every tensor of the layer that is present.
  std::vector<const gguf::TensorInfo*> all() const;
};

class Model {
 public:
  // Maps and validates the file, structure and values (model_checks.hpp); throws apr::Error
  // naming the file, key or tensor at fault.
  static std::unique_ptr<Model> load(const std::filesystem::path& path,
                                     const LoadOptions& options = {});

  const gguf::File& file() const { return *file_; }
  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const gguf::TensorInfo& token_embd() const { return *token_embd_; }
  const gguf::TensorInfo& output_norm() const { return *output_norm_; }
  const gguf::TensorInfo& output() const { return *output_; }  // token_embd when tied
  // Llama 3.1+ RoPE frequency divisors ([n_rot/2]); nullptr when the model has none.
  const gguf::TensorInfo* rope_freqs() const { return rope_freqs_; }
  // phi3 LongRoPE divisors for contexts up to n_ctx_orig (short) and beyond (long); nullptr
  // when the model has none.
  const gguf::TensorInfo* rope_factors_short() const { return rope_short_; }
  const gguf::TensorInfo* rope_factors_long() const { return rope_long_; }
  // The divisors a session of n_ctx positions uses: rope_freqs, else phi3's short or long set
  // (as llama.cpp chooses them); nullptr for none.
  const gguf::TensorInfo* rope_factors_for(uint32_t n_ctx) const;
  const std::vector<LayerTensors>& layers() const { return layers_; }

 private:
  std::unique_ptr<gguf::File> file_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  const gguf::TensorInfo* token_embd_ = nullptr;
  const gguf::TensorInfo* output_norm_ = nullptr;
  const gguf::TensorInfo* output_ = nullptr;
  const gguf::TensorInfo* rope_freqs_ = nullptr;
  const gguf::TensorInfo* rope_short_ = nullptr;
  const gguf::TensorInfo* rope_long_ = nullptr;
  std::vector<LayerTensors> layers_;
};

}  // namespace apr
