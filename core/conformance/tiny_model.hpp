// SPDX-License-Identifier: MIT
// A tiny transformer (random weights, two layers, GQA, QKV bias) run by the host's own forward
// pass (core/runtime/forward_pass.hpp), so the plugin sees exactly the calls a model gets.
// The whole-model checks run it on the plugin under test and on the reference (cpu) plugin.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <string>
#include <vector>

namespace conformance {

struct TinyModelSpec {
  uint32_t n_embd = 64, n_head = 4, n_head_kv = 2, head_dim = 16, n_ff = 96, n_vocab = 40;
  uint32_t n_layer = 2, n_ctx = 16;
  uint32_t weight_type = APR_TYPE_F32;  // of every matrix but the embedding table (F32)
  uint64_t seed = 2024;
};

// Logits after each forward call: one prompt batch, then single-token decode steps.
struct TinyRun {
  std::vector<std::vector<float>> logits;
};

// Runs `batches` (the first is the prompt) on device `dev` of `api`. With use_steps, every batch
// is bracketed by step_begin/step_end with the per-step scalars in a device buffer, as the host
// does (the plugin must have both markers). With a sink, every stage it wants is traced (and the
// batches run eagerly, as the host's traced runs do); the device has no sink afterwards. Throws
// std::runtime_error naming the failed call.
TinyRun run_tiny_model(const apr_plugin_api& api, apr_device* dev, const TinyModelSpec& spec,
                       const std::vector<std::vector<int32_t>>& batches, bool use_steps,
                       const apr_trace_sink* sink = nullptr);

}  // namespace conformance
