// SPDX-License-Identifier: MIT
// A model read from GGUF, its weights uploaded to one backend device, and the forward pass
// (runtime/forward_pass.hpp) over them at the session's position in its KV cache.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "host/backend.hpp"
#include "model/model.hpp"
#include "runtime/forward_pass.hpp"

namespace apr {

// The weight types a model's matrices need, for the capability check (host/backend.hpp).
std::vector<WeightNeed> weight_needs(const Model& model);
// The ABI 1.3 operations a model's family needs from the plugin (none for llama and qwen2).
std::vector<OperationNeed> operation_needs(const ModelConfig& config);
// Both, with the family's name: what select_backend and Session check.
BackendNeeds backend_needs(const Model& model);

struct SessionOptions {
  uint32_t n_ctx = 0;      // KV cache positions; 0 = min(training context, 4096)
  uint32_t n_batch = 512;  // most prompt tokens sent through the kernels at once
  uint32_t n_threads = 0;  // 0 = plugin default
  uint32_t device_index = 0;
  bool logits_every_row = false;  // forward(..., LogitRows::kEvery) may be used
};

class Session {
 public:
  Session(const Model& model, const host::Plugin& plugin, SessionOptions options);
  ~Session();

  // Runs `tokens` at the current position in batches of at most batch_size(), appends them to
  // the KV cache and returns the logits that follow the last one, or with LogitRows::kEvery
  // (SessionOptions::logits_every_row) those that follow each token, row by row. Throws
  // apr::Error when the context would overflow.
  const std::vector<float>& forward(std::span<const int32_t> tokens,
                                    LogitRows rows = LogitRows::kLast);

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
  void upload_weights();
  Buffer upload_vector(const gguf::TensorInfo& t);

  const Model& model_;
  const ModelConfig& cfg_;
  std::unique_ptr<Device> device_;
  uint32_t n_ctx_ = 0;
  uint32_t n_batch_ = 0;
  uint32_t n_past_ = 0;
  double upload_seconds_ = 0;
  ModelWeights weights_;
  std::unique_ptr<ForwardPass> pass_;  // after weights_ and device_: destroyed first
  std::vector<float> logits_;
};

}  // namespace apr
