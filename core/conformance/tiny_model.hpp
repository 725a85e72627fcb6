// SPDX-License-Identifier: MIT
// A tiny transformer (random weights, two layers, GQA) run by the host's own forward pass
// (core/runtime/forward_pass.hpp), so the plugin sees exactly the calls a model gets, and the
// same model computed in float64 from plugin.h's definitions (tiny_model_ref.cpp). Two families:
// qwen2-like (QKV bias, SiLU) and gemma-like, which uses every operation of ABI 1.3 (embedding
// scale, per-head QK-norm, a sliding-window layer with its own RoPE base, soft-capped scores,
// sandwich norms, GELU and soft-capped logits). The whole-model checks run it on the plugin under
// test, on the reference (cpu) plugin and in float64.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <string>
#include <vector>

namespace conformance {

enum class TinyFamily { kQwen2, kGemma };

struct TinyModelSpec {
  uint32_t n_embd = 64, n_head = 4, n_head_kv = 2, head_dim = 16, n_ff = 96, n_vocab = 40;
  uint32_t n_layer = 2, n_ctx = 16;
  uint32_t weight_type = APR_TYPE_F32;  // of every matrix but the embedding table (F32)
  uint64_t seed = 2024;
  TinyFamily family = TinyFamily::kQwen2;
};

// The gemma-like model's constants (tiny_config): layer 0 slides over this many keys.
constexpr uint32_t kTinySlidingWindow = 3;
constexpr float kTinyAttnSoftcap = 1.5f, kTinyFinalSoftcap = 20.0f;

// The model's weights on the host, drawn in a fixed order from the spec's seed: what the plugin
// gets and what the float64 reference reads. Vectors are f32; a matrix is its GGUF bytes.
struct TinyMatrix {
  uint32_t type = APR_TYPE_F32;
  uint64_t n_rows = 0, n_cols = 0;
  std::vector<uint8_t> bytes;
  std::string name;
};
struct TinyLayer {
  std::vector<float> attn_norm, ffn_norm, qkv_bias;                  // qkv_bias: qwen2-like only
  std::vector<float> q_norm, k_norm, post_attn_norm, post_ffn_norm;  // gemma-like only
  TinyMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
};
struct TinyHostWeights {
  TinyMatrix token_embd;  // F32
  std::vector<TinyLayer> layers;
  std::vector<float> output_norm;
  TinyMatrix output;
};
TinyHostWeights tiny_host_weights(const TinyModelSpec& spec);

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

// The same batches in float64 (tiny_model_ref.cpp): the last row's logits of each forward call.
std::vector<std::vector<double>> reference_tiny_model(
    const TinyModelSpec& spec, const std::vector<std::vector<int32_t>>& batches);

// Whether the model's forward pass produces `stage` (as the host's ModelConfig::has_stage).
bool tiny_model_has_stage(const TinyModelSpec& spec, apr_stage stage);

}  // namespace conformance
