// SPDX-License-Identifier: MIT
// A llama/qwen2 model mapped from a GGUF file: its configuration, tokenizer and the tensors of
// every layer, each checked for presence, shape and a type apr can decode.
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
  const gguf::TensorInfo* wq = nullptr;
  const gguf::TensorInfo* wk = nullptr;
  const gguf::TensorInfo* wv = nullptr;
  const gguf::TensorInfo* bq = nullptr;  // qwen2 only
  const gguf::TensorInfo* bk = nullptr;
  const gguf::TensorInfo* bv = nullptr;
  const gguf::TensorInfo* wo = nullptr;
  const gguf::TensorInfo* bo = nullptr;  // optional
  const gguf::TensorInfo* ffn_norm = nullptr;
  const gguf::TensorInfo* w_gate = nullptr;
  const gguf::TensorInfo* w_up = nullptr;
  const gguf::TensorInfo* w_down = nullptr;
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
  const std::vector<LayerTensors>& layers() const { return layers_; }

 private:
  std::unique_ptr<gguf::File> file_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  const gguf::TensorInfo* token_embd_ = nullptr;
  const gguf::TensorInfo* output_norm_ = nullptr;
  const gguf::TensorInfo* output_ = nullptr;
  const gguf::TensorInfo* rope_freqs_ = nullptr;
  std::vector<LayerTensors> layers_;
};

}  // namespace apr
