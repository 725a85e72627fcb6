// SPDX-License-Identifier: MIT
// A model's weights uploaded to one backend device, its KV cache, and the forward pass that
// drives the plugin's kernels and reports every stage to an optional trace sink.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "host/backend.hpp"
#include "model/model.hpp"

namespace apr {

// The weight types a model's matrices need, for the capability check (host/backend.hpp).
std::vector<WeightNeed> weight_needs(const Model& model);

struct SessionOptions {
  uint32_t n_ctx = 0;      // KV cache positions; 0 = min(training context, 4096)
  uint32_t n_batch = 512;  // most prompt tokens sent through the kernels at once
  uint32_t n_threads = 0;  // 0 = plugin default
  uint32_t device_index = 0;
};

class Session {
 public:
  Session(const Model& model, const host::Plugin& plugin, SessionOptions options);
  ~Session();

  // Runs `tokens` at the current position, appends them to the KV cache and returns the logits
  // that follow the last one. Throws apr::Error when the context would overflow.
  const std::vector<float>& forward(std::span<const int32_t> tokens);

  void reset() { n_past_ = 0; }
  // Forgets every position from `n` on; the next forward() writes the KV cache from there (a
  // chat re-prefills only where a re-tokenized history differs from what was cached).
  void rewind(uint32_t n) { n_past_ = n < n_past_ ? n : n_past_; }
  uint32_t position() const { return n_past_; }
  uint32_t context_size() const { return n_ctx_; }
  uint32_t batch_size() const { return n_batch_; }
  const Model& model() const { return model_; }
  Device& device() { return *device_; }
  double upload_seconds() const { return upload_seconds_; }

  // Stages the sink wants are copied to the host and handed to it; nullptr turns tracing off.
  // The sink struct is copied; its user_data must outlive the session's use of it.
  void set_trace_sink(const apr_trace_sink* sink);

 private:
  struct LayerWeights;
  void upload_weights();
  Buffer upload_vector(const gguf::TensorInfo& t);
  void run_batch(const int32_t* tokens, uint32_t n);
  // run_batch bracketed by the ABI 1.2 step markers when the plugin has them (not while tracing).
  void run_step(const int32_t* tokens, uint32_t n);
  void emit(apr_stage stage, uint32_t layer, const Buffer& buffer, uint64_t offset_elems,
            uint32_t rows, uint32_t cols, uint32_t stride);

  const Model& model_;
  const ModelConfig& cfg_;
  std::unique_ptr<Device> device_;
  uint32_t n_ctx_ = 0;
  uint32_t n_batch_ = 0;
  uint32_t n_past_ = 0;
  double upload_seconds_ = 0;

  Weight token_embd_;
  Weight output_;  // unset when tied to token_embd_
  Buffer output_norm_;
  std::vector<LayerWeights> layers_;

  std::vector<Buffer> kv_k_, kv_v_;  // per layer: n_ctx x kv_dim
  Buffer x_, h_, qkv_, att_, tmp_, gate_, up_, logits_dev_;
  std::vector<float> logits_;
  std::vector<float> rope_factors_;  // empty unless the model has rope_freqs
  Buffer step_scalars_;              // APR_STEP_WORD_* of the current step; empty without markers

  apr_trace_sink sink_{};
  bool tracing_ = false;
};

}  // namespace apr
