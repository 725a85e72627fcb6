// SPDX-License-Identifier: MIT
// A model's tensors uploaded to one device, in the form the forward pass consumes them.
#pragma once

#include <vector>

#include "plugin_handle/device.hpp"

namespace apr {

struct LayerWeights {
  Buffer attn_norm, ffn_norm;            // f32 vectors
  Buffer qkv_bias;                       // [bq | bk | bv]; empty without biases
  Buffer output_bias;                    // empty without attn_output.bias
  Buffer q_norm, k_norm;                 // [head_dim]; empty without QK-norm
  Buffer post_attn_norm, post_ffn_norm;  // empty without sandwich norms
  Weight wq, wk, wv, wo, w_gate, w_up, w_down;
  Weight wqkv;  // set instead of wq, wk, wv when the model stores them fused (phi3)
};

struct ModelWeights {
  Weight token_embd;
  Weight output;  // unset when the head is tied to token_embd
  Buffer output_norm;
  std::vector<LayerWeights> layers;
  std::vector<float> rope_factors;  // empty unless the model has rope_freqs (or phi3's)
};

}  // namespace apr
