// SPDX-License-Identifier: MIT
// Kernels on f32 activations: RMS norm, add, RoPE, causal GQA attention, SwiGLU.
#include <cfloat>

#include "kernels.hpp"

namespace apr_cuda {
namespace {

constexpr uint32_t kWarp = 32;
constexpr uint32_t kBlock = 256;
constexpr uint32_t kAttnThreads = 128;
constexpr uint32_t kAttnWarps = kAttnThreads / kWarp;
constexpr uint32_t kAttnKeys = 128;  // keys scored per pass of the online softmax
constexpr uint32_t kAttnDimsPerThread = kMaxHeadDim / kAttnThreads;

uint32_t blocks_for(uint64_t n, uint32_t threads) {
  // Grid-stride loops cover whatever a capped grid leaves.
  const uint64_t b = (n + threads - 1) / threads;
  return static_cast<uint32_t>(b < 65535 * 16 ? b : 65535 * 16);
}

template <typename T>
__device__ T warp_sum(T v) {
#pragma unroll
  for (uint32_t off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ float warp_max(float v) {
#pragma unroll
  for (uint32_t off = kWarp / 2; off > 0; off /= 2) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  }
  return v;
}

// Sum over the block, returned to every thread. `scratch` holds one T per warp.
template <typename T>
__device__ T block_sum(T v, T* scratch) {
  const uint32_t lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const uint32_t n_warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = 0;
  for (uint32_t w = 0; w < n_warps; ++w) total += scratch[w];
  return total;
}

__device__ float block_max(float v, float* scratch) {
  const uint32_t lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const uint32_t n_warps = blockDim.x / kWarp;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float m = -FLT_MAX;
  for (uint32_t w = 0; w < n_warps; ++w) m = fmaxf(m, scratch[w]);
  return m;
}

__global__ void rms_norm_kernel(const float* x, const float* weight, float* out, uint32_t n_cols,
                                float eps) {
  __shared__ double scratch[kBlock / kWarp];
  const uint64_t base = static_cast<uint64_t>(blockIdx.x) * n_cols;
  // The sum of squares in double, as the reference does; it costs nothing next to the loads.
  double ss = 0.0;
  for (uint32_t c = threadIdx.x; c < n_cols; c += blockDim.x) {
    const double v = x[base + c];
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float scale = 1.0f / sqrtf(static_cast<float>(ss / n_cols) + eps);
  // Each thread rewrites only the elements it read, so out may alias x.
  for (uint32_t c = threadIdx.x; c < n_cols; c += blockDim.x) {
    out[base + c] = x[base + c] * scale * weight[c];
  }
}

__global__ void add_kernel(const float* a, const float* b, float* out, uint64_t n,
                           uint64_t b_period) {
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    out[i] = a[i] + b[i % b_period];
  }
}

__global__ void rope_kernel(float* x, RopeParams p) {
  const uint32_t half = p.n_rot / 2;
  const uint64_t total = static_cast<uint64_t>(p.n_rows) * p.n_heads * half;
  for (uint64_t idx = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint32_t i = static_cast<uint32_t>(idx % half);
    const uint32_t h = static_cast<uint32_t>((idx / half) % p.n_heads);
    const uint32_t r = static_cast<uint32_t>(idx / (static_cast<uint64_t>(half) * p.n_heads));
    // The angle in double: at large positions an f32 angle loses whole digits of the phase.
    const double pos = static_cast<double>(p.pos0) + r;
    const double theta = pos * static_cast<double>(p.freq_scale) *
                         pow(static_cast<double>(p.freq_base), -2.0 * i / p.n_rot) /
                         (p.has_factors ? static_cast<double>(p.freq_factors[i]) : 1.0);
    double s, c;
    sincos(theta, &s, &c);
    float* head =
        x + static_cast<uint64_t>(r) * p.row_stride + static_cast<uint64_t>(h) * p.head_dim;
    const uint32_t i0 = p.mode == 0 ? 2 * i : i;
    const uint32_t i1 = p.mode == 0 ? 2 * i + 1 : i + half;
    const double x0 = head[i0], x1 = head[i1];
    head[i0] = static_cast<float>(x0 * c - x1 * s);
    head[i1] = static_cast<float>(x0 * s + x1 * c);
  }
}

// One block per (head, query row): scores for up to kAttnKeys keys at a time, then an online
// softmax update of the running max, the running sum and the output accumulators.
__global__ void __launch_bounds__(kAttnThreads)
    attention_kernel(const float* q, const float* k_cache, const float* v_cache, float* out,
                     AttentionParams p) {
  __shared__ float qs[kMaxHeadDim];
  __shared__ float sc[kAttnKeys];
  const uint32_t h = blockIdx.x, r = blockIdx.y;
  const uint32_t lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const uint32_t kv_head = h / (p.n_heads / p.n_kv_heads);
  const uint64_t kv_dim = static_cast<uint64_t>(p.n_kv_heads) * p.head_dim;
  const uint32_t n_kv = p.pos0 + r + 1;  // causal: row r sees positions 0..pos0+r
  const float* qrow =
      q + static_cast<uint64_t>(r) * p.q_row_stride + static_cast<uint64_t>(h) * p.head_dim;
  for (uint32_t d = threadIdx.x; d < p.head_dim; d += kAttnThreads) qs[d] = qrow[d];
  const float* kbase = k_cache + static_cast<uint64_t>(kv_head) * p.head_dim;
  const float* vbase = v_cache + static_cast<uint64_t>(kv_head) * p.head_dim;

  float m = -FLT_MAX, l = 0.0f;
  float o[kAttnDimsPerThread] = {};
  for (uint32_t t0 = 0; t0 < n_kv; t0 += kAttnKeys) {
    const uint32_t cnt = min(kAttnKeys, n_kv - t0);
    __syncthreads();  // qs written / sc of the previous pass consumed
    for (uint32_t tt = warp; tt < cnt; tt += kAttnWarps) {
      const float* kr = kbase + (t0 + tt) * kv_dim;
      float s = 0.0f;
      for (uint32_t d = lane; d < p.head_dim; d += kWarp) s = fmaf(qs[d], kr[d], s);
      s = warp_sum(s);
      if (lane == 0) sc[tt] = s * p.scale;
    }
    __syncthreads();
    float cmax = -FLT_MAX;
    for (uint32_t t = lane; t < cnt; t += kWarp) cmax = fmaxf(cmax, sc[t]);
    cmax = warp_max(cmax);  // every warp computes the same value
    const float m_new = fmaxf(m, cmax);
    const float corr = expf(m - m_new);
    __syncthreads();  // all warps have read the raw scores
    for (uint32_t t = threadIdx.x; t < cnt; t += kAttnThreads) sc[t] = expf(sc[t] - m_new);
    __syncthreads();
    float psum = 0.0f;
    for (uint32_t t = lane; t < cnt; t += kWarp) psum += sc[t];
    psum = warp_sum(psum);
    l = l * corr + psum;
#pragma unroll
    for (uint32_t j = 0; j < kAttnDimsPerThread; ++j) {
      const uint32_t d = threadIdx.x + j * kAttnThreads;
      if (d >= p.head_dim) break;
      float acc = 0.0f;
      for (uint32_t t = 0; t < cnt; ++t) acc = fmaf(sc[t], vbase[(t0 + t) * kv_dim + d], acc);
      o[j] = o[j] * corr + acc;
    }
    m = m_new;
  }
  float* orow = out + (static_cast<uint64_t>(r) * p.n_heads + h) * p.head_dim;
#pragma unroll
  for (uint32_t j = 0; j < kAttnDimsPerThread; ++j) {
    const uint32_t d = threadIdx.x + j * kAttnThreads;
    if (d < p.head_dim) orow[d] = o[j] / l;
  }
}

// Tracing only: writes the full score and probability rows, masked entries 0.
__global__ void __launch_bounds__(kAttnThreads)
    attention_probe_kernel(const float* q, const float* k_cache, AttentionParams p, float* scores,
                           float* probs) {
  __shared__ float qs[kMaxHeadDim];
  __shared__ float scratch[kAttnWarps];
  const uint32_t h = blockIdx.x, r = blockIdx.y;
  const uint32_t lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const uint32_t kv_head = h / (p.n_heads / p.n_kv_heads);
  const uint64_t kv_dim = static_cast<uint64_t>(p.n_kv_heads) * p.head_dim;
  const uint32_t n_total = p.pos0 + p.n_rows, n_kv = p.pos0 + r + 1;
  const float* qrow =
      q + static_cast<uint64_t>(r) * p.q_row_stride + static_cast<uint64_t>(h) * p.head_dim;
  for (uint32_t d = threadIdx.x; d < p.head_dim; d += kAttnThreads) qs[d] = qrow[d];
  __syncthreads();
  float* srow = scores + (static_cast<uint64_t>(h) * p.n_rows + r) * n_total;
  const float* kbase = k_cache + static_cast<uint64_t>(kv_head) * p.head_dim;
  for (uint32_t t = warp; t < n_total; t += kAttnWarps) {
    float s = 0.0f;
    if (t < n_kv) {
      const float* kr = kbase + t * kv_dim;
      for (uint32_t d = lane; d < p.head_dim; d += kWarp) s = fmaf(qs[d], kr[d], s);
      s = warp_sum(s) * p.scale;
    }
    if (lane == 0) srow[t] = s;
  }
  if (!probs) return;
  __syncthreads();  // global writes of this block are visible to the block after the barrier
  float mx = -FLT_MAX;
  for (uint32_t t = threadIdx.x; t < n_kv; t += kAttnThreads) mx = fmaxf(mx, srow[t]);
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (uint32_t t = threadIdx.x; t < n_kv; t += kAttnThreads) sum += expf(srow[t] - mx);
  sum = block_sum(sum, scratch);
  float* prow = probs + (static_cast<uint64_t>(h) * p.n_rows + r) * n_total;
  for (uint32_t t = threadIdx.x; t < n_total; t += kAttnThreads) {
    prow[t] = t < n_kv ? expf(srow[t] - mx) / sum : 0.0f;
  }
}

// Tracing only: out = probs . V from the probabilities attention_probe_kernel wrote, so that the
// traced ATTN_SOFTMAX is the value the ATTENTION stage was computed from (plugin.h's tracing
// rule). One block per (head, query row), threads across head_dim.
__global__ void __launch_bounds__(kAttnThreads)
    attention_apply_kernel(const float* probs, const float* v_cache, float* out,
                           AttentionParams p) {
  const uint32_t h = blockIdx.x, r = blockIdx.y;
  const uint32_t kv_head = h / (p.n_heads / p.n_kv_heads);
  const uint64_t kv_dim = static_cast<uint64_t>(p.n_kv_heads) * p.head_dim;
  const uint32_t n_total = p.pos0 + p.n_rows, n_kv = p.pos0 + r + 1;
  const float* prow = probs + (static_cast<uint64_t>(h) * p.n_rows + r) * n_total;
  const float* vbase = v_cache + static_cast<uint64_t>(kv_head) * p.head_dim;
  float* orow = out + (static_cast<uint64_t>(r) * p.n_heads + h) * p.head_dim;
  for (uint32_t d = threadIdx.x; d < p.head_dim; d += kAttnThreads) {
    float acc = 0.0f;
    for (uint32_t t = 0; t < n_kv; ++t) acc = fmaf(prow[t], vbase[t * kv_dim + d], acc);
    orow[d] = acc;
  }
}

__global__ void swiglu_kernel(const float* gate, const float* up, float* out, uint64_t n) {
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    const float silu = g / (1.0f + expf(-g));
    out[i] = up ? silu * up[i] : silu;
  }
}

}  // namespace

cudaError_t launch_rms_norm(const float* x, const float* weight, float* out, uint32_t n_rows,
                            uint32_t n_cols, float eps, cudaStream_t stream) {
  if (n_rows == 0 || n_cols == 0) return cudaSuccess;
  rms_norm_kernel<<<n_rows, kBlock, 0, stream>>>(x, weight, out, n_cols, eps);
  return cudaGetLastError();
}

cudaError_t launch_add(const float* a, const float* b, float* out, uint64_t n, uint64_t b_period,
                       cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  add_kernel<<<blocks_for(n, kBlock), kBlock, 0, stream>>>(a, b, out, n, b_period);
  return cudaGetLastError();
}

cudaError_t launch_rope(float* x, const RopeParams& p, cudaStream_t stream) {
  const uint64_t total = static_cast<uint64_t>(p.n_rows) * p.n_heads * (p.n_rot / 2);
  if (total == 0) return cudaSuccess;
  rope_kernel<<<blocks_for(total, kBlock), kBlock, 0, stream>>>(x, p);
  return cudaGetLastError();
}

cudaError_t launch_attention(const float* q, const float* k_cache, const float* v_cache, float* out,
                             const AttentionParams& p, cudaStream_t stream) {
  if (p.n_rows == 0 || p.n_heads == 0) return cudaSuccess;
  attention_kernel<<<dim3(p.n_heads, p.n_rows), kAttnThreads, 0, stream>>>(q, k_cache, v_cache, out,
                                                                           p);
  return cudaGetLastError();
}

cudaError_t launch_attention_probe(const float* q, const float* k_cache, const AttentionParams& p,
                                   float* scores, float* probs, cudaStream_t stream) {
  if (p.n_rows == 0 || p.n_heads == 0) return cudaSuccess;
  attention_probe_kernel<<<dim3(p.n_heads, p.n_rows), kAttnThreads, 0, stream>>>(q, k_cache, p,
                                                                                 scores, probs);
  return cudaGetLastError();
}

cudaError_t launch_attention_apply(const float* probs, const float* v_cache, float* out,
                                   const AttentionParams& p, cudaStream_t stream) {
  if (p.n_rows == 0 || p.n_heads == 0) return cudaSuccess;
  attention_apply_kernel<<<dim3(p.n_heads, p.n_rows), kAttnThreads, 0, stream>>>(probs, v_cache,
                                                                                 out, p);
  return cudaGetLastError();
}

cudaError_t launch_swiglu(const float* gate, const float* up, float* out, uint64_t n,
                          cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  swiglu_kernel<<<blocks_for(n, kBlock), kBlock, 0, stream>>>(gate, up, out, n);
  return cudaGetLastError();
}

}  // namespace apr_cuda
