// SPDX-License-Identifier: MIT
// The transformer's forward pass as a sequence of plugin kernel calls: one batch of tokens at a
// position, through a KV cache, with every stage offered to the trace sink. The one place that
// knows the order of the calls (docs/PLUGIN-ABI.md §6); the host's Session runs it on a model
// read from GGUF, the conformance suite on a tiny random model.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <vector>

#include "model/model_config.hpp"
#include "plugin_handle/device.hpp"
#include "runtime/model_weights.hpp"
#include "runtime/stage_kernels.hpp"

namespace apr {

// Which rows' logits a batch computes: the last (generation) or every row (perplexity).
enum class LogitRows { kLast, kEvery };

struct ForwardPassOptions {
  uint32_t n_ctx = 0;     // KV cache positions
  uint32_t max_rows = 1;  // most tokens in one batch
  // Buffer for the logits of every row of a batch (max_rows x n_vocab) rather than one row.
  bool logits_every_row = false;
  // Bracket each untraced batch by the ABI 1.2 step markers when the plugin has them.
  bool step_markers = true;
};

class ForwardPass {
 public:
  // Allocates the KV cache and the scratch buffers on `device`; `weights` must outlive the pass.
  ForwardPass(Device& device, const ModelConfig& config, const ModelWeights& weights,
              ForwardPassOptions options);

  // Runs tokens[0..n) at positions pos0.. (n <= max_rows, pos0 + n <= n_ctx), storing their K
  // and V, and leaves the logits of the last row, or of every row, on the device.
  void run(const int32_t* tokens, uint32_t n, uint32_t pos0, LogitRows rows = LogitRows::kLast);
  // Copies `rows` rows of logits (from the last run) into dst.
  void read_logits(float* dst, uint32_t rows);

  // Stages the sink wants are copied to the host and handed to it; nullptr turns tracing off.
  // The sink struct is copied; its user_data must outlive the pass's use of it.
  void set_trace_sink(const apr_trace_sink* sink);

  uint32_t n_ctx() const { return opt_.n_ctx; }
  uint32_t max_rows() const { return opt_.max_rows; }

 private:
  void run_batch(const int32_t* tokens, uint32_t n, uint32_t pos0, LogitRows rows);
  void emit(apr_stage stage, uint32_t layer, const Buffer& buffer, uint64_t offset_elems,
            uint32_t rows, uint32_t cols, uint32_t stride);

  Device& d_;
  const ModelConfig& c_;
  const ModelWeights& w_;
  StageKernels kernels_;
  ForwardPassOptions opt_;

  std::vector<Buffer> kv_k_, kv_v_;  // per layer: n_ctx x kv_dim
  Buffer x_, h_, qkv_, att_, tmp_, gate_, up_, logits_;
  Buffer step_scalars_;  // APR_STEP_WORD_* of the current step; empty without markers

  apr_trace_sink sink_{};
  bool tracing_ = false;
};

}  // namespace apr
