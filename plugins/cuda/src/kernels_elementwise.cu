// SPDX-License-Identifier: MIT
// Kernels on f32 activations: RMS norm (whole rows or groups of strided rows), add, RoPE, causal
// GQA attention (optionally sliding-window and soft-capped), the gated FFN activation (SwiGLU,
// GeGLU) and the unary maps (scale, soft-cap).
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

// One block per (row, group); block r * n_groups + g normalises the group_cols elements of group g
// of row r, which start at r * row_stride + g * group_cols. n_groups 1 with row_stride = n_cols is
// the plain row-wise norm. blockDim.x is a multiple of kWarp, at most kBlock.
__global__ void __launch_bounds__(kBlock)
    rms_norm_kernel(const float* x, const float* weight, float* out, uint32_t group_cols,
                    uint32_t n_groups, uint32_t row_stride, float eps) {
  __shared__ double scratch[kBlock / kWarp];
  const uint32_t g = blockIdx.x % n_groups;
  const uint64_t r = blockIdx.x / n_groups;
  const uint64_t base = r * row_stride + static_cast<uint64_t>(g) * group_cols;
  // The sum of squares in double, as the reference does; it costs nothing next to the loads.
  double ss = 0.0;
  for (uint32_t c = threadIdx.x; c < group_cols; c += blockDim.x) {
    const double v = x[base + c];
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float scale = 1.0f / sqrtf(static_cast<float>(ss / group_cols) + eps);
  // Each thread rewrites only the elements it read, so out may alias x.
  for (uint32_t c = threadIdx.x; c < group_cols; c += blockDim.x) {
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

// The first cache row query position `pos` sees: with a window W > 0 the W keys pos - W + 1..pos,
// else every key from 0.
__device__ __forceinline__ uint32_t first_visible_key(uint32_t pos, uint32_t window) {
  return window != 0 && pos >= window ? pos - window + 1 : 0;
}

// A score scale * q.k after the optional soft-cap c * tanh(s / c). The fused and the traced
// kernels both score through here.
__device__ __forceinline__ float attention_score(float dot, const AttentionParams& p) {
  const float s = dot * p.scale;
  return p.softcap > 0.0f ? p.softcap * tanhf(s / p.softcap) : s;
}

// One block per (head, query row): scores for up to kAttnKeys keys at a time, then an online
// softmax update of the running max, the running sum and the output accumulators. Only the
// visible keys [first_visible_key, pos0 + r] are read.
__global__ void __launch_bounds__(kAttnThreads)
    attention_kernel(const float* q, const float* k_cache, const float* v_cache, float* out,
                     AttentionParams p) {
  __shared__ float qs[kMaxHeadDim];
  __shared__ float sc[kAttnKeys];
  const uint32_t h = blockIdx.x, r = blockIdx.y;
  const uint32_t lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const uint32_t kv_head = h / (p.n_heads / p.n_kv_heads);
  const uint64_t kv_dim = static_cast<uint64_t>(p.n_kv_heads) * p.head_dim;
  // Causal: row r sees positions up to pos0 + r, and from pos0 + r - window + 1 with a window.
  const uint32_t key_end = p.pos0 + r + 1;
  const uint32_t key_begin = first_visible_key(p.pos0 + r, p.window);
  const float* qrow =
      q + static_cast<uint64_t>(r) * p.q_row_stride + static_cast<uint64_t>(h) * p.head_dim;
  for (uint32_t d = threadIdx.x; d < p.head_dim; d += kAttnThreads) qs[d] = qrow[d];
  const float* kbase = k_cache + static_cast<uint64_t>(kv_head) * p.head_dim;
  const float* vbase = v_cache + static_cast<uint64_t>(kv_head) * p.head_dim;

  float m = -FLT_MAX, l = 0.0f;
  float o[kAttnDimsPerThread] = {};
  for (uint32_t t0 = key_begin; t0 < key_end; t0 += kAttnKeys) {
    const uint32_t cnt = min(kAttnKeys, key_end - t0);
    __syncthreads();  // qs written / sc of the previous pass consumed
    for (uint32_t tt = warp; tt < cnt; tt += kAttnWarps) {
      const float* kr = kbase + (t0 + tt) * kv_dim;
      float s = 0.0f;
      for (uint32_t d = lane; d < p.head_dim; d += kWarp) s = fmaf(qs[d], kr[d], s);
      s = warp_sum(s);
      if (lane == 0) sc[tt] = attention_score(s, p);
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
  const uint32_t n_total = p.pos0 + p.n_rows;
  const uint32_t key_end = p.pos0 + r + 1;
  const uint32_t key_begin = first_visible_key(p.pos0 + r, p.window);
  const float* qrow =
      q + static_cast<uint64_t>(r) * p.q_row_stride + static_cast<uint64_t>(h) * p.head_dim;
  for (uint32_t d = threadIdx.x; d < p.head_dim; d += kAttnThreads) qs[d] = qrow[d];
  __syncthreads();
  float* srow = scores + (static_cast<uint64_t>(h) * p.n_rows + r) * n_total;
  const float* kbase = k_cache + static_cast<uint64_t>(kv_head) * p.head_dim;
  for (uint32_t t = warp; t < n_total; t += kAttnWarps) {
    float s = 0.0f;
    if (t >= key_begin && t < key_end) {
      const float* kr = kbase + t * kv_dim;
      for (uint32_t d = lane; d < p.head_dim; d += kWarp) s = fmaf(qs[d], kr[d], s);
      s = attention_score(warp_sum(s), p);
    }
    if (lane == 0) srow[t] = s;  // masked: 0
  }
  if (!probs) return;
  __syncthreads();  // global writes of this block are visible to the block after the barrier
  float mx = -FLT_MAX;
  for (uint32_t t = key_begin + threadIdx.x; t < key_end; t += kAttnThreads)
    mx = fmaxf(mx, srow[t]);
  mx = block_max(mx, scratch);
  float sum = 0.0f;
  for (uint32_t t = key_begin + threadIdx.x; t < key_end; t += kAttnThreads)
    sum += expf(srow[t] - mx);
  sum = block_sum(sum, scratch);
  float* prow = probs + (static_cast<uint64_t>(h) * p.n_rows + r) * n_total;
  for (uint32_t t = threadIdx.x; t < n_total; t += kAttnThreads) {
    prow[t] = t >= key_begin && t < key_end ? expf(srow[t] - mx) / sum : 0.0f;
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
  const uint32_t n_total = p.pos0 + p.n_rows;
  const uint32_t key_end = p.pos0 + r + 1;
  const uint32_t key_begin = first_visible_key(p.pos0 + r, p.window);
  const float* prow = probs + (static_cast<uint64_t>(h) * p.n_rows + r) * n_total;
  const float* vbase = v_cache + static_cast<uint64_t>(kv_head) * p.head_dim;
  float* orow = out + (static_cast<uint64_t>(r) * p.n_heads + h) * p.head_dim;
  for (uint32_t d = threadIdx.x; d < p.head_dim; d += kAttnThreads) {
    float acc = 0.0f;
    for (uint32_t t = key_begin; t < key_end; ++t) acc = fmaf(prow[t], vbase[t * kv_dim + d], acc);
    orow[d] = acc;
  }
}

template <GateActivation kAct>
__device__ __forceinline__ float gate_activation(float z) {
  if constexpr (kAct == GateActivation::kSilu) {
    return z / (1.0f + expf(-z));
  } else {
    // 0.5 z (1 + tanh(u)) with u = sqrt(2/pi) (z + 0.044715 z^3), written as z / (1 + e^(-2u)):
    // the same function (0.5 (1 + tanh(u)) is the logistic of 2u) without the cancellation of
    // 1 + tanh(u) for negative z, where tanh(u) rounds to -1 long before the value reaches 0.
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    const float u = kSqrt2OverPi * (z + 0.044715f * z * z * z);
    return z / (1.0f + expf(-2.0f * u));
  }
}

// One instantiation per activation computes act(gate) the same way whether it writes the
// activation alone (up null, for the trace) or the product, so the traced value is the one used.
template <GateActivation kAct>
__global__ void __launch_bounds__(kBlock)
    swiglu_kernel(const float* gate, const float* up, float* out, uint64_t n) {
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const float a = gate_activation<kAct>(gate[i]);
    out[i] = up ? a * up[i] : a;
  }
}

__global__ void __launch_bounds__(kBlock)
    unary_kernel(UnaryOp op, float alpha, const float* x, float* out, uint64_t n) {
  for (uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    out[i] = op == UnaryOp::kSoftcap ? alpha * tanhf(v / alpha) : alpha * v;
  }
}

}  // namespace

cudaError_t launch_rms_norm(const float* x, const float* weight, float* out, uint32_t n_rows,
                            uint32_t n_cols, uint32_t row_stride, uint32_t n_groups, float eps,
                            cudaStream_t stream) {
  if (n_rows == 0 || n_cols == 0) return cudaSuccess;
  if (n_groups == 0 || n_cols % n_groups != 0 || row_stride < n_cols) return cudaErrorInvalidValue;
  const uint64_t blocks = static_cast<uint64_t>(n_rows) * n_groups;
  if (blocks > kMaxRmsNormBlocks) return cudaErrorInvalidConfiguration;
  const uint32_t group_cols = n_cols / n_groups;
  // Short groups (the per-head QK-norm: 64..256 elements) get no idle warps: whole warps enough
  // to cover the group once, up to kBlock threads.
  const uint32_t warps = (group_cols + kWarp - 1) / kWarp;
  const uint32_t threads = warps * kWarp < kBlock ? warps * kWarp : kBlock;
  rms_norm_kernel<<<static_cast<uint32_t>(blocks), threads, 0, stream>>>(x, weight, out, group_cols,
                                                                         n_groups, row_stride, eps);
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
                          GateActivation act, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  switch (act) {
    case GateActivation::kSilu:
      swiglu_kernel<GateActivation::kSilu>
          <<<blocks_for(n, kBlock), kBlock, 0, stream>>>(gate, up, out, n);
      break;
    case GateActivation::kGeluTanh:
      swiglu_kernel<GateActivation::kGeluTanh>
          <<<blocks_for(n, kBlock), kBlock, 0, stream>>>(gate, up, out, n);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_unary(UnaryOp op, float alpha, const float* x, float* out, uint64_t n,
                         cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (op != UnaryOp::kScale && op != UnaryOp::kSoftcap) return cudaErrorInvalidValue;
  unary_kernel<<<blocks_for(n, kBlock), kBlock, 0, stream>>>(op, alpha, x, out, n);
  return cudaGetLastError();
}

}  // namespace apr_cuda
