// SPDX-License-Identifier: MIT
// Kernels that read weights in their GGUF encoding: embedding lookup and matrix multiplication.
// Decode (few rows of x): one warp per output feature, lanes walk the row in 16-element chunks so
// neighbouring lanes read neighbouring bytes, then a warp-shuffle reduction. Prefill (many rows):
// a 64x64 output tile per block; each 32-wide slice of the weight tile is dequantized once into
// shared memory and reused by all 64 rows of x.
#include "block_decode.cuh"
#include "kernels.hpp"

namespace apr_cuda {
namespace {

constexpr uint32_t kWarp = 32;
constexpr uint32_t kMatvecWarpsPerBlock = 4;
constexpr uint32_t kMatvecRows = 4;     // rows of x one matvec block carries
constexpr uint32_t kMatvecMaxRows = 8;  // above this the tiled kernel wins
constexpr uint32_t kTile = 64;          // output tile edge of the tiled kernel
constexpr uint32_t kTileK = 32;         // depth of one shared-memory slice
constexpr uint32_t kTileThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each
constexpr uint32_t kEmbedThreads = 128;

struct WeightView {
  const uint8_t* data;
  uint64_t n_rows;
  uint64_t n_cols;
  uint64_t row_bytes;
};

template <uint32_t Type>
__global__ void embed_kernel(WeightView w, const int32_t* ids, float* out) {
  const uint64_t chunk = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint64_t k0 = chunk * kChunk;
  if (k0 >= w.n_cols) return;
  const uint32_t r = blockIdx.y;
  const uint8_t* row = w.data + static_cast<uint64_t>(ids[r]) * w.row_bytes;
  float v[kChunk];
  decode_chunk<Type>(row, w.n_cols, k0, v);
  float* dst = out + static_cast<uint64_t>(r) * w.n_cols + k0;
  for (uint32_t i = 0; i < kChunk && k0 + i < w.n_cols; ++i) dst[i] = v[i];
}

template <uint32_t Type>
__global__ void __launch_bounds__(kMatvecWarpsPerBlock* kWarp)
    matvec_kernel(WeightView w, const float* x, uint32_t x_stride, uint32_t n_rows,
                  const float* bias, float* y, uint32_t y_stride) {
  const uint64_t o = static_cast<uint64_t>(blockIdx.x) * kMatvecWarpsPerBlock + threadIdx.x / kWarp;
  if (o >= w.n_rows) return;  // the whole warp leaves together, so the shuffles stay full
  const uint32_t lane = threadIdx.x % kWarp;
  const uint32_t r0 = blockIdx.y * kMatvecRows;
  const uint32_t rows = min(kMatvecRows, n_rows - r0);
  const uint8_t* row = w.data + o * w.row_bytes;

  float acc[kMatvecRows] = {};
  const uint64_t n_chunks = (w.n_cols + kChunk - 1) / kChunk;
  for (uint64_t c = lane; c < n_chunks; c += kWarp) {
    const uint64_t k0 = c * kChunk;
    float wv[kChunk];
    decode_chunk<Type>(row, w.n_cols, k0, wv);
    const bool full = k0 + kChunk <= w.n_cols;
#pragma unroll
    for (uint32_t r = 0; r < kMatvecRows; ++r) {
      if (r >= rows) break;
      const float* xr = x + static_cast<uint64_t>(r0 + r) * x_stride + k0;
      float s = 0.0f;
      if (full) {
#pragma unroll
        for (uint32_t i = 0; i < kChunk; ++i) s = fmaf(wv[i], xr[i], s);
      } else {
        for (uint32_t i = 0; k0 + i < w.n_cols; ++i) s = fmaf(wv[i], xr[i], s);
      }
      acc[r] += s;
    }
  }
#pragma unroll
  for (uint32_t r = 0; r < kMatvecRows; ++r) {
#pragma unroll
    for (uint32_t off = kWarp / 2; off > 0; off /= 2) {
      acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    }
  }
  if (lane == 0) {
    const float b = bias ? bias[o] : 0.0f;
    for (uint32_t r = 0; r < rows; ++r)
      y[static_cast<uint64_t>(r0 + r) * y_stride + o] = acc[r] + b;
  }
}

template <uint32_t Type>
__global__ void __launch_bounds__(kTileThreads)
    matmul_tiled_kernel(WeightView w, const float* x, uint32_t x_stride, uint32_t n_rows,
                        const float* bias, float* y, uint32_t y_stride) {
  // +1 column keeps the 16 threads of a half-warp on distinct banks when they read ws[n][k].
  __shared__ float ws[kTile][kTileK + 1];
  __shared__ float xs[kTile][kTileK + 1];
  const uint32_t tid = threadIdx.x;
  const uint32_t tx = tid % 16, ty = tid / 16;
  const uint64_t n0 = static_cast<uint64_t>(blockIdx.x) * kTile;
  const uint32_t m0 = blockIdx.y * kTile;

  float acc[4][4] = {};
  for (uint64_t k0 = 0; k0 < w.n_cols; k0 += kTileK) {
    if (tid < kTile * (kTileK / kChunk)) {
      const uint32_t lr = tid / 2, part = tid % 2;
      const uint64_t o = n0 + lr, kc = k0 + part * kChunk;
      float v[kChunk];
      if (o < w.n_rows && kc < w.n_cols) {
        decode_chunk<Type>(w.data + o * w.row_bytes, w.n_cols, kc, v);
      } else {
#pragma unroll
        for (uint32_t i = 0; i < kChunk; ++i) v[i] = 0.0f;
      }
#pragma unroll
      for (uint32_t i = 0; i < kChunk; ++i) ws[lr][part * kChunk + i] = v[i];
    }
#pragma unroll
    for (uint32_t q = 0; q < kTile * kTileK / kTileThreads; ++q) {
      const uint32_t idx = tid + q * kTileThreads;
      const uint32_t m = idx / kTileK, kk = idx % kTileK;
      const bool inside = m0 + m < n_rows && k0 + kk < w.n_cols;
      xs[m][kk] = inside ? x[static_cast<uint64_t>(m0 + m) * x_stride + k0 + kk] : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (uint32_t kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (uint32_t i = 0; i < 4; ++i) a[i] = xs[ty + 16 * i][kk];
#pragma unroll
      for (uint32_t j = 0; j < 4; ++j) b[j] = ws[tx + 16 * j][kk];
#pragma unroll
      for (uint32_t i = 0; i < 4; ++i) {
#pragma unroll
        for (uint32_t j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (uint32_t i = 0; i < 4; ++i) {
    const uint32_t m = m0 + ty + 16 * i;
    if (m >= n_rows) continue;
#pragma unroll
    for (uint32_t j = 0; j < 4; ++j) {
      const uint64_t o = n0 + tx + 16 * j;
      if (o < w.n_rows)
        y[static_cast<uint64_t>(m) * y_stride + o] = acc[i][j] + (bias ? bias[o] : 0.0f);
    }
  }
}

WeightView view_of(const DeviceWeight& w) {
  return {w.data, w.n_rows, w.n_cols, w.row_bytes};
}

template <uint32_t Type>
cudaError_t embed_typed(const DeviceWeight& w, const int32_t* ids, uint32_t n_rows, float* out,
                        cudaStream_t stream) {
  const uint64_t n_chunks = (w.n_cols + kChunk - 1) / kChunk;
  const dim3 grid(static_cast<uint32_t>((n_chunks + kEmbedThreads - 1) / kEmbedThreads), n_rows);
  embed_kernel<Type><<<grid, kEmbedThreads, 0, stream>>>(view_of(w), ids, out);
  return cudaGetLastError();
}

template <uint32_t Type>
cudaError_t matmul_typed(const DeviceWeight& w, const float* x, uint32_t x_stride, uint32_t n_rows,
                         const float* bias, float* y, uint32_t y_stride, cudaStream_t stream) {
  if (n_rows <= kMatvecMaxRows) {
    const dim3 grid(
        static_cast<uint32_t>((w.n_rows + kMatvecWarpsPerBlock - 1) / kMatvecWarpsPerBlock),
        (n_rows + kMatvecRows - 1) / kMatvecRows);
    matvec_kernel<Type><<<grid, kMatvecWarpsPerBlock * kWarp, 0, stream>>>(
        view_of(w), x, x_stride, n_rows, bias, y, y_stride);
  } else {
    const dim3 grid(static_cast<uint32_t>((w.n_rows + kTile - 1) / kTile),
                    (n_rows + kTile - 1) / kTile);
    matmul_tiled_kernel<Type>
        <<<grid, kTileThreads, 0, stream>>>(view_of(w), x, x_stride, n_rows, bias, y, y_stride);
  }
  return cudaGetLastError();
}

// Calls fn.template operator()<Type>() for the weight's type; an unknown type is a bad value.
template <typename Fn>
cudaError_t dispatch(uint32_t type, const Fn& fn) {
  switch (type) {
    case APR_TYPE_F32:
      return fn.template operator()<APR_TYPE_F32>();
    case APR_TYPE_F16:
      return fn.template operator()<APR_TYPE_F16>();
    case APR_TYPE_BF16:
      return fn.template operator()<APR_TYPE_BF16>();
    case APR_TYPE_Q4_0:
      return fn.template operator()<APR_TYPE_Q4_0>();
    case APR_TYPE_Q4_1:
      return fn.template operator()<APR_TYPE_Q4_1>();
    case APR_TYPE_Q5_0:
      return fn.template operator()<APR_TYPE_Q5_0>();
    case APR_TYPE_Q5_1:
      return fn.template operator()<APR_TYPE_Q5_1>();
    case APR_TYPE_Q8_0:
      return fn.template operator()<APR_TYPE_Q8_0>();
    case APR_TYPE_Q2_K:
      return fn.template operator()<APR_TYPE_Q2_K>();
    case APR_TYPE_Q3_K:
      return fn.template operator()<APR_TYPE_Q3_K>();
    case APR_TYPE_Q4_K:
      return fn.template operator()<APR_TYPE_Q4_K>();
    case APR_TYPE_Q5_K:
      return fn.template operator()<APR_TYPE_Q5_K>();
    case APR_TYPE_Q6_K:
      return fn.template operator()<APR_TYPE_Q6_K>();
    default:
      return cudaErrorInvalidValue;
  }
}

struct EmbedCall {
  const DeviceWeight& w;
  const int32_t* ids;
  uint32_t n_rows;
  float* out;
  cudaStream_t stream;
  template <uint32_t Type>
  cudaError_t operator()() const {
    return embed_typed<Type>(w, ids, n_rows, out, stream);
  }
};

struct MatmulCall {
  const DeviceWeight& w;
  const float* x;
  uint32_t x_stride, n_rows;
  const float* bias;
  float* y;
  uint32_t y_stride;
  cudaStream_t stream;
  template <uint32_t Type>
  cudaError_t operator()() const {
    return matmul_typed<Type>(w, x, x_stride, n_rows, bias, y, y_stride, stream);
  }
};

}  // namespace

bool weight_type_supported(uint32_t type) {
  return weight_block_elems(type) != 0;
}

uint32_t weight_block_elems(uint32_t type) {
  switch (type) {
    case APR_TYPE_F32:
    case APR_TYPE_F16:
    case APR_TYPE_BF16:
      return 1;
    case APR_TYPE_Q4_0:
    case APR_TYPE_Q4_1:
    case APR_TYPE_Q5_0:
    case APR_TYPE_Q5_1:
    case APR_TYPE_Q8_0:
      return 32;
    case APR_TYPE_Q2_K:
    case APR_TYPE_Q3_K:
    case APR_TYPE_Q4_K:
    case APR_TYPE_Q5_K:
    case APR_TYPE_Q6_K:
      return 256;
    default:
      return 0;
  }
}

uint32_t weight_block_bytes(uint32_t type) {
  switch (type) {
    case APR_TYPE_F32:
      return BlockTraits<APR_TYPE_F32>::kBytes;
    case APR_TYPE_F16:
      return BlockTraits<APR_TYPE_F16>::kBytes;
    case APR_TYPE_BF16:
      return BlockTraits<APR_TYPE_BF16>::kBytes;
    case APR_TYPE_Q4_0:
      return BlockTraits<APR_TYPE_Q4_0>::kBytes;
    case APR_TYPE_Q4_1:
      return BlockTraits<APR_TYPE_Q4_1>::kBytes;
    case APR_TYPE_Q5_0:
      return BlockTraits<APR_TYPE_Q5_0>::kBytes;
    case APR_TYPE_Q5_1:
      return BlockTraits<APR_TYPE_Q5_1>::kBytes;
    case APR_TYPE_Q8_0:
      return BlockTraits<APR_TYPE_Q8_0>::kBytes;
    case APR_TYPE_Q2_K:
      return BlockTraits<APR_TYPE_Q2_K>::kBytes;
    case APR_TYPE_Q3_K:
      return BlockTraits<APR_TYPE_Q3_K>::kBytes;
    case APR_TYPE_Q4_K:
      return BlockTraits<APR_TYPE_Q4_K>::kBytes;
    case APR_TYPE_Q5_K:
      return BlockTraits<APR_TYPE_Q5_K>::kBytes;
    case APR_TYPE_Q6_K:
      return BlockTraits<APR_TYPE_Q6_K>::kBytes;
    default:
      return 0;
  }
}

cudaError_t launch_embed(const DeviceWeight& w, const int32_t* ids, uint32_t n_rows, float* out,
                         cudaStream_t stream) {
  if (n_rows == 0 || w.n_cols == 0) return cudaSuccess;
  return dispatch(w.type, EmbedCall{w, ids, n_rows, out, stream});
}

cudaError_t launch_matmul(const DeviceWeight& w, const float* x, uint32_t x_stride, uint32_t n_rows,
                          const float* bias, float* y, uint32_t y_stride, cudaStream_t stream) {
  if (n_rows == 0 || w.n_rows == 0) return cudaSuccess;
  return dispatch(w.type, MatmulCall{w, x, x_stride, n_rows, bias, y, y_stride, stream});
}

}  // namespace apr_cuda
