// SPDX-License-Identifier: MIT
// The plugin kernel call(s) behind each stage of the forward pass, on explicit buffers: the
// forward pass runs them in order; `apr bisect --isolate` runs one of them alone, on another
// backend's saved inputs. Every activation is f32, n rows packed (row stride = width) unless
// said otherwise; [q|k|v] rows are qkv_dim() wide.
#pragma once

#include <apr/plugin.h>

#include <cstdint>

#include "model/model_config.hpp"
#include "plugin_handle/device.hpp"
#include "runtime/model_weights.hpp"

namespace apr {

// Has the device copy rows x cols floats of `buffer` from element `offset` (row stride `stride`
// elements, 0 = packed) to its trace sink as (stage, layer): trace_emit with the view a stage has.
void emit_stage(Device& device, apr_stage stage, uint32_t layer, const Buffer& buffer,
                uint64_t offset, uint32_t rows, uint32_t cols, uint32_t stride);

class StageKernels {
 public:
  // `weights` must outlive the object.
  StageKernels(Device& device, const ModelConfig& config, const ModelWeights& weights)
      : d_(device), c_(config), w_(weights) {}

  // embedding: n rows of n_embd (times the family's embedding scale, gemma's sqrt(n_embd)).
  void embed(const int32_t* tokens, uint32_t n, const Buffer& out) const;
  // attn_norm, ffn_norm, final_norm, attn_post_norm, ffn_post_norm (`weight` is the stage's norm
  // vector); out may be x.
  void rms_norm(const Buffer& weight, const Buffer& x, const Buffer& out, uint32_t n) const;
  // qkv_matmul: Q, K and V side by side in one [q|k|v] row per token.
  void qkv_matmul(uint32_t layer, const Buffer& h, const Buffer& qkv, uint32_t n) const;
  // qkv_bias, in place (only for models with QKV biases).
  void qkv_bias(uint32_t layer, const Buffer& qkv, uint32_t n) const;
  // q_norm and k_norm: each head of Q (or K) of the [q|k|v] rows RMS-normalised in place with the
  // layer's head_dim weight (only for models with QK-norm).
  void q_norm(uint32_t layer, const Buffer& qkv, uint32_t n) const;
  void k_norm(uint32_t layer, const Buffer& qkv, uint32_t n) const;
  // q_post_rope and k_post_rope: Q and K of the [q|k|v] rows rotated in place, with the layer's
  // RoPE base and scale (sliding-window layers may have their own).
  void rope(uint32_t layer, const Buffer& qkv, uint32_t n, uint32_t pos0) const;
  // K and V of the [q|k|v] rows into the layer's cache at pos0.. (no traced stage of its own).
  void kv_store(const Buffer& qkv, uint32_t n, uint32_t pos0, const Buffer& k_cache,
                const Buffer& v_cache) const;
  // attn_scores, attn_softmax (emitted by the plugin) and attention: Q of the [q|k|v] rows
  // against cache positions 0..pos0+n (the layer's window and the family's scale and soft-cap).
  void attention(uint32_t layer, const Buffer& qkv, uint32_t n, uint32_t pos0,
                 const Buffer& k_cache, const Buffer& v_cache, const Buffer& out) const;
  // attn_out: the output projection (plus its bias when the model has one).
  void attn_out(uint32_t layer, const Buffer& attention, const Buffer& out, uint32_t n) const;
  // post_attn_residual, post_ffn_residual: out = a + b over n rows of n_embd.
  void residual(const Buffer& a, const Buffer& b, const Buffer& out, uint32_t n) const;
  void ffn_gate(uint32_t layer, const Buffer& h, const Buffer& gate, uint32_t n) const;
  void ffn_up(uint32_t layer, const Buffer& h, const Buffer& up, uint32_t n) const;
  // ffn_silu / ffn_gelu (emitted by the plugin) and ffn_swigl / ffn_geglu: out = act(gate) * up
  // with the family's activation.
  void swiglu(uint32_t layer, const Buffer& gate, const Buffer& up, const Buffer& out,
              uint32_t n) const;
  // ffn_out: the down projection.
  void ffn_down(uint32_t layer, const Buffer& in, const Buffer& out, uint32_t n) const;
  // lm_head: logits of `rows` rows of h starting at `first_row`, packed into `logits` (soft-capped
  // when the family caps them).
  void lm_head(const Buffer& h, uint32_t first_row, uint32_t rows, const Buffer& logits) const;

 private:
  void matmul(const Weight& w, const Buffer& x, const Buffer& y, uint64_t y_col, uint32_t y_stride,
              uint32_t n, const Buffer* bias) const;
  void head_norm(const Buffer& weight, const Buffer& qkv, uint64_t col, uint32_t heads,
                 uint32_t n) const;
  void unary(uint32_t op, float alpha, const Buffer& x, uint64_t n) const;

  Device& d_;
  const ModelConfig& c_;
  const ModelWeights& w_;
};

}  // namespace apr
