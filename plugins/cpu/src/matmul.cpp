// SPDX-License-Identifier: MIT
// y = W x (+ bias) for every weight encoding. With quantized activations on repacked weights
// (decode and prefill alike): integer kernels on 16-row groups. Otherwise, few rows (decode): each
// output row is decoded block by block and dotted with each x row straight away; many rows
// (prefill): a tile of W rows is decoded once to f32 (F32 rows are read in place) and reused for
// a chunk of x rows. Every output is computed by exactly one task, in an order fixed by the shapes
// alone, so results are bit-identical for any number of threads (the repacked path sizes its
// tasks by the thread count, which changes which task computes an output, never how).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fault_injection.hpp"
#include "kernels.hpp"
#include "status.hpp"
#include "views.hpp"

namespace apr_cpu {

namespace {

constexpr uint32_t kMaxDecodeRows = 4;
// Each decode task streams about this many weight bytes: long sequential runs keep the hardware
// prefetchers effective when the weights come from DRAM (small tasks halved 2-thread decode speed).
constexpr uint64_t kDecodeTaskBytes = 256 * 1024;
constexpr uint64_t kPrefillXRowsPerChunk = 64;
constexpr uint64_t kPrefillTileBytes = 256 * 1024;

struct MatmulView {
  const apr_weight* w;
  const float* x;
  uint64_t x_stride;
  uint32_t n_rows;
  const float* bias;
  float* y;
  uint64_t y_stride;
};

// APR_CPU_ACT chooses how x meets block-quantized weights:
//  - "auto" (default, also when unset): where the weights are repacked for integer kernels
//    (packed_weights.hpp), x is quantized to 16 bits per block of 32 (q16_activations.hpp),
//    within a few 1e-5 of f32; elsewhere f32;
//  - "q8": 8 bits per block of 32 (q8_activations.hpp), for every type with an 8-bit kernel:
//    fastest, with llama.cpp's precision (about 1e-2 of the logits on small models);
//  - "f32": f32 always, the precision class the conformance suite and the float64 end-to-end
//    checks hold every backend to (1e-6 of sum |w x|).
// The bounds are stated and tested in tests/cpu/test_q8_matmul.cpp.
enum class Act { kF32, kQ8, kQ16 };

Act activation_mode(const apr_weight& w) {
  const char* act = std::getenv("APR_CPU_ACT");
  const bool packed = w.packed.n_groups > 0;
  if (!act || !*act || std::strcmp(act, "auto") == 0) return packed ? Act::kQ16 : Act::kF32;
  if (std::strcmp(act, "f32") == 0) return Act::kF32;
  if (std::strcmp(act, "q8") == 0) return q8_supported(w.type->id) ? Act::kQ8 : Act::kF32;
  invalid(std::string("APR_CPU_ACT must be auto, f32 or q8, got '") + act + "'");
}

void quantize(const IsaKernels&, const float* x, BlockQ8* out, size_t n) {
  quantize_q8(x, out, n);
}
void quantize(const IsaKernels& k, const float* x, BlockQ16* out, size_t n) {
  if (k.quantize_q16)
    k.quantize_q16(x, out, n);
  else
    quantize_q16(x, out, n);
}

// Quantizes the n_rows rows of x into xq (nb blocks per row), in parallel when there are many.
template <class Block>
const Block* quantize_rows(apr_device& device, const MatmulView& m) {
  thread_local std::vector<Block> xq;
  const uint64_t n_cols = m.w->n_cols, nb = n_cols / 32;
  if (xq.size() < m.n_rows * nb) xq.resize(m.n_rows * nb);
  Block* out = xq.data();
  if (m.n_rows <= kMaxDecodeRows) {
    for (uint32_t r = 0; r < m.n_rows; ++r)
      quantize(device.kernels, m.x + r * m.x_stride, out + r * nb, n_cols);
  } else {
    device.pool.run(m.n_rows, [&](size_t r) {
      quantize(device.kernels, m.x + r * m.x_stride, out + r * nb, n_cols);
    });
  }
  return out;
}

void add_bias(const MatmulView& m, uint64_t o0, uint64_t o1) {
  if (!m.bias) return;
  for (uint32_t r = 0; r < m.n_rows; ++r)
    for (uint64_t o = o0; o < o1; ++o) m.y[r * m.y_stride + o] += m.bias[o];
}

// Rows [o0, o1) one by one, each dotted with every x row: in f32, or on 8-bit activations when
// xq is given.
void rows_one_by_one(const IsaKernels& k, const MatmulView& m, const BlockQ8* xq, uint64_t o0,
                     uint64_t o1) {
  const apr_weight& w = *m.w;
  const uint64_t nb = w.n_cols / 32;
  for (uint64_t o = o0; o < o1; ++o) {
    const uint8_t* row = w.row(o);
    for (uint32_t r = 0; r < m.n_rows; ++r)
      m.y[r * m.y_stride + o] = xq ? k.dot_row_q8(w.type->id, row, xq + r * nb, w.n_cols)
                                   : k.dot_row(w.type->id, row, m.x + r * m.x_stride, w.n_cols);
  }
  add_bias(m, o0, o1);
}

void packed_gemm(const IsaKernels& k, const apr_weight& w, uint64_t g, const BlockQ8* x,
                 uint32_t nx, float* y, uint64_t y_stride) {
  k.packed_gemm_q8(w.type->id, w.packed.group(g), w.n_cols, x, nx, y, y_stride);
}
void packed_gemm(const IsaKernels& k, const apr_weight& w, uint64_t g, const BlockQ16* x,
                 uint32_t nx, float* y, uint64_t y_stride) {
  k.packed_gemm_q16(w.type->id, w.packed.group(g), w.n_cols, x, nx, y, y_stride);
}

// Quantized activations on repacked weights: tasks of whole 16-row groups, and the rows after
// the last full group (if any) as one more task, row by row (8-bit activations there too, f32
// under 16-bit ones, which have no row kernel). Within a task, x is taken 16 rows at a time so
// the task's weights are reused from cache while x streams.
template <class Block>
void matmul_packed(apr_device& device, const MatmulView& m) {
  const apr_weight& w = *m.w;
  const IsaKernels& k = device.kernels;
  const Block* xq = quantize_rows<Block>(device, m);
  const uint64_t nb = w.n_cols / 32;
  // Each output comes from one group kernel whatever the partition, so tasks may be sized by the
  // thread count: about 4 per thread keeps both threads busy to the end (a few large tasks left
  // one thread idle while the other finished), and at most kDecodeTaskBytes of weights each.
  const uint64_t by_threads =
      (w.packed.n_groups + 4 * device.pool.size() - 1) / (4 * device.pool.size());
  const uint64_t groups_per_task = std::clamp<uint64_t>(
      by_threads, 1, std::max<uint64_t>(1, kDecodeTaskBytes / w.packed.group_bytes));
  const uint64_t n_group_tasks = (w.packed.n_groups + groups_per_task - 1) / groups_per_task;
  const bool tail = w.n_rows > w.packed.n_groups * kPackRows;
  device.pool.run(n_group_tasks + (tail ? 1 : 0), [&](size_t task) {
    if (task == n_group_tasks) {
      const BlockQ8* xq8 = nullptr;
      if constexpr (std::is_same_v<Block, BlockQ8>) xq8 = xq;
      rows_one_by_one(k, m, xq8, w.packed.n_groups * kPackRows, w.n_rows);
      return;
    }
    const uint64_t g0 = task * groups_per_task;
    const uint64_t g1 = std::min(w.packed.n_groups, g0 + groups_per_task);
    constexpr uint32_t kXChunk = 16;
    for (uint32_t r0 = 0; r0 < m.n_rows; r0 += kXChunk) {
      const uint32_t nx = std::min(kXChunk, m.n_rows - r0);
      for (uint64_t g = g0; g < g1; ++g)
        packed_gemm(k, w, g, xq + r0 * nb, nx, m.y + r0 * m.y_stride + g * kPackRows, m.y_stride);
    }
    add_bias(m, g0 * kPackRows, g1 * kPackRows);
  });
}

void matmul_decode(apr_device& device, const MatmulView& m, const BlockQ8* xq) {
  const apr_weight& w = *m.w;
  const uint64_t rows_per_task = std::max<uint64_t>(16, kDecodeTaskBytes / w.row_bytes);
  const size_t n_tasks = (w.n_rows + rows_per_task - 1) / rows_per_task;
  device.pool.run(n_tasks, [&](size_t task) {
    const uint64_t o0 = task * rows_per_task;
    rows_one_by_one(device.kernels, m, xq, o0, std::min<uint64_t>(w.n_rows, o0 + rows_per_task));
  });
}

void matmul_prefill(apr_device& device, const MatmulView& m) {
  const apr_weight& w = *m.w;
  const IsaKernels& k = device.kernels;
  uint64_t tile_rows = kPrefillTileBytes / (w.n_cols * sizeof(float));
  tile_rows = std::clamp<uint64_t>(tile_rows / 4 * 4, 4, 64);
  const uint64_t n_tiles = (w.n_rows + tile_rows - 1) / tile_rows;
  // Aligned F32 rows are used where they lie (a copy cost a tenth of F32 prefill); other types
  // (and F32 mapped at an odd offset) are decoded a tile of rows at a time.
  const bool in_place =
      w.type->id == APR_TYPE_F32 && reinterpret_cast<uintptr_t>(w.data) % alignof(float) == 0;
  device.pool.run(n_tiles, [&](size_t tile) {
    thread_local std::vector<float> scratch;
    const uint64_t o0 = tile * tile_rows;
    const uint64_t n_w = std::min(tile_rows, w.n_rows - o0);
    const float* rows = reinterpret_cast<const float*>(w.row(o0));
    uint64_t w_stride = w.row_bytes / sizeof(float);
    if (!in_place) {
      if (scratch.size() < n_w * w.n_cols) scratch.resize(n_w * w.n_cols);
      for (uint64_t i = 0; i < n_w; ++i)
        k.decode_row(w.type->id, w.row(o0 + i), scratch.data() + i * w.n_cols, w.n_cols);
      rows = scratch.data();
      w_stride = w.n_cols;
    }
    // The tile stays in cache while x streams past it in chunks.
    for (uint64_t r0 = 0; r0 < m.n_rows; r0 += kPrefillXRowsPerChunk) {
      const uint64_t n_x = std::min<uint64_t>(kPrefillXRowsPerChunk, m.n_rows - r0);
      float* y = m.y + r0 * m.y_stride + o0;
      k.dot_tile(rows, w_stride, n_w, m.x + r0 * m.x_stride, m.x_stride, n_x, y, m.y_stride,
                 w.n_cols);
      if (m.bias)
        for (uint64_t r = 0; r < n_x; ++r)
          for (uint64_t i = 0; i < n_w; ++i) y[r * m.y_stride + i] += m.bias[o0 + i];
    }
  });
}

}  // namespace

void run_matmul(apr_device& device, const apr_matmul_args& a) {
  const apr_weight& w = *a.weight;
  const uint64_t x_stride = a.x_row_stride ? a.x_row_stride : w.n_cols;
  const uint64_t y_stride = a.y_row_stride ? a.y_row_stride : w.n_rows;
  MatmulView m{&w, nullptr, x_stride, a.n_rows, nullptr, nullptr, y_stride};
  m.x = f32_at(a.x, a.x_offset);
  m.y = f32_at(a.y, a.y_offset);
  if (a.bias) m.bias = f32_at(a.bias, a.bias_offset);
  if (a.n_rows == 0) return;
  const Act act = activation_mode(w);
  const bool packed = w.packed.n_groups > 0;
  if (act == Act::kQ16)
    matmul_packed<BlockQ16>(device, m);
  else if (act == Act::kQ8 && packed)
    matmul_packed<BlockQ8>(device, m);
  else if (a.n_rows <= kMaxDecodeRows)
    matmul_decode(device, m, act == Act::kQ8 ? quantize_rows<BlockQ8>(device, m) : nullptr);
  else
    matmul_prefill(device, m);
  fault::after_matmul(device, a);
}

}  // namespace apr_cpu
