// SPDX-License-Identifier: MIT
// Launchers for the plugin's CUDA kernels. Plain C++ so the host-side files compile with g++;
// every launcher only enqueues work on `stream` and returns the launch error, never waiting.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace apr_cuda {

// A weight matrix as it lies on the device: n_rows rows of row_bytes in the GGUF block encoding.
struct DeviceWeight {
  uint32_t type = 0;
  uint64_t n_rows = 0;
  uint64_t n_cols = 0;
  uint64_t row_bytes = 0;
  const uint8_t* data = nullptr;
};

// True for the weight types the kernels decode.
bool weight_type_supported(uint32_t type);
// Elements and bytes per block of a supported type (block size 1 for F32, F16, BF16).
uint32_t weight_block_elems(uint32_t type);
uint32_t weight_block_bytes(uint32_t type);

// out[r] = dequantized row ids[r]; ids are device memory and already range-checked.
cudaError_t launch_embed(const DeviceWeight& w, const int32_t* ids, uint32_t n_rows, float* out,
                         cudaStream_t stream);

// y[r][o] = sum_i W[o][i] * x[r][i] (+ bias[o]). Picks the matrix-vector kernel for few rows and
// the shared-memory tiled kernel otherwise.
cudaError_t launch_matmul(const DeviceWeight& w, const float* x, uint32_t x_stride, uint32_t n_rows,
                          const float* bias, float* y, uint32_t y_stride, cudaStream_t stream);

// Row r's group g (n_cols / n_groups elements from r * row_stride + g * (n_cols / n_groups)) is
// normalised on its own with the same weight of n_cols / n_groups entries; out has x's layout and
// may equal x. One block per (row, group): n_rows * n_groups must be at most kMaxRmsNormBlocks.
constexpr uint64_t kMaxRmsNormBlocks = 0x7fffffffu;  // the grid's x limit
cudaError_t launch_rms_norm(const float* x, const float* weight, float* out, uint32_t n_rows,
                            uint32_t n_cols, uint32_t row_stride, uint32_t n_groups, float eps,
                            cudaStream_t stream);

cudaError_t launch_add(const float* a, const float* b, float* out, uint64_t n, uint64_t b_period,
                       cudaStream_t stream);

constexpr uint32_t kMaxRopePairs = 256;  // head_dim <= 512

struct RopeParams {
  uint32_t row_stride;
  uint32_t n_rows;
  uint32_t n_heads;
  uint32_t head_dim;
  uint32_t n_rot;
  uint32_t mode;
  uint32_t pos0;
  float freq_base;
  float freq_scale;
  // Llama 3.1 frequency divisors travel by value with the launch (at most 1 KiB), so the host
  // pointer of the ABI needs no copy to the device. has_factors 0: all 1.
  uint32_t has_factors;
  float freq_factors[kMaxRopePairs];
};
cudaError_t launch_rope(float* x, const RopeParams& p, cudaStream_t stream);

struct AttentionParams {
  uint32_t q_row_stride;
  uint32_t n_rows;
  uint32_t pos0;
  uint32_t n_heads;
  uint32_t n_kv_heads;
  uint32_t head_dim;
  float scale;
  // Per-call constants (ABI 1.3): row p sees keys p - window + 1..p when window > 0, and scores
  // become softcap * tanh(score / softcap) before the mask and softmax when softcap > 0.
  uint32_t window;
  float softcap;
};
// Largest head_dim the attention kernel accepts.
constexpr uint32_t kMaxHeadDim = 512;

cudaError_t launch_attention(const float* q, const float* k_cache, const float* v_cache, float* out,
                             const AttentionParams& p, cudaStream_t stream);

// For tracing only: scaled (and soft-capped) scores and softmax probabilities, each
// n_heads x n_rows x n_kv with n_kv = pos0 + n_rows and masked entries (future keys, keys outside
// the window) 0. probs may be null.
cudaError_t launch_attention_probe(const float* q, const float* k_cache, const AttentionParams& p,
                                   float* scores, float* probs, cudaStream_t stream);

// For tracing only: out = probs . V, probs as launch_attention_probe wrote them. Traced attention
// runs probe + apply instead of the fused kernel, so the emitted scores and probabilities are the
// values the output was computed from.
cudaError_t launch_attention_apply(const float* probs, const float* v_cache, float* out,
                                   const AttentionParams& p, cudaStream_t stream);

// The gate's activation: silu(z) = z / (1 + e^-z), or GELU's tanh form
// 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))).
enum class GateActivation : uint32_t { kSilu, kGeluTanh };

// out[i] = act(gate[i]) * up[i] for i < n, or just act(gate[i]) when up is null. out may equal
// gate or up. act(gate) is the same f32 value either way, so a traced activation is the one the
// product used.
cudaError_t launch_swiglu(const float* gate, const float* up, float* out, uint64_t n,
                          GateActivation act, cudaStream_t stream);

// out[i] = alpha * x[i] (kScale) or alpha * tanh(x[i] / alpha) (kSoftcap, alpha > 0) for i < n.
// out may equal x.
enum class UnaryOp : uint32_t { kScale, kSoftcap };
cudaError_t launch_unary(UnaryOp op, float alpha, const float* x, float* out, uint64_t n,
                         cudaStream_t stream);

}  // namespace apr_cuda
