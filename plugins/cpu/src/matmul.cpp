// SPDX-License-Identifier: MIT
// y = W x (+ bias) for every weight encoding. Few rows (decode): each output row is decoded block
// by block and dotted with each x row straight away. Many rows (prefill): a tile of W rows is
// decoded once to f32 and reused for a chunk of x rows. The partition of outputs into tasks
// depends only on the shapes, never on the thread count, so results are bit-identical for any
// number of threads.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "arg_checks.hpp"
#include "kernels.hpp"

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

// APR_CPU_ACT: "f32" (default) keeps every product in f32, the precision class the conformance
// suite and the end-to-end float64 checks hold every backend to; "q8" quantizes decode activations
// to 8 bits for the types with an integer kernel (q8_activations.hpp), faster and within the bound
// stated in tests/cpu/test_q8_matmul.cpp.
bool q8_activations() {
  const char* act = std::getenv("APR_CPU_ACT");
  if (!act || !*act || std::strcmp(act, "f32") == 0) return false;
  if (std::strcmp(act, "q8") == 0) return true;
  invalid(std::string("APR_CPU_ACT must be f32 or q8, got '") + act + "'");
}

void matmul_decode(apr_device& device, const MatmulView& m) {
  const apr_weight& w = *m.w;
  const IsaKernels& k = device.kernels;
  const apr_type type = w.format->type;
  // x is quantized once here, on the calling thread, and read by every task.
  thread_local std::vector<BlockQ8> xq;
  const bool q8 = q8_supported(type) && q8_activations();
  const uint64_t nb = w.n_cols / 32;
  if (q8) {
    if (xq.size() < m.n_rows * nb) xq.resize(m.n_rows * nb);
    for (uint32_t r = 0; r < m.n_rows; ++r)
      quantize_q8(m.x + r * m.x_stride, xq.data() + r * nb, w.n_cols);
  }
  const BlockQ8* xq_data = xq.data();
  const uint64_t rows_per_task = std::max<uint64_t>(16, kDecodeTaskBytes / w.row_bytes);
  const size_t n_tasks = (w.n_rows + rows_per_task - 1) / rows_per_task;
  device.pool.run(n_tasks, [&](size_t task) {
    const uint64_t o_end = std::min<uint64_t>(w.n_rows, (task + 1) * rows_per_task);
    for (uint64_t o = task * rows_per_task; o < o_end; ++o) {
      const uint8_t* row = w.row(o);
      for (uint32_t r = 0; r < m.n_rows; ++r) {
        float v = q8 ? k.dot_row_q8(type, row, xq_data + r * nb, w.n_cols)
                     : k.dot_row(type, row, m.x + r * m.x_stride, w.n_cols);
        if (m.bias) v += m.bias[o];
        m.y[r * m.y_stride + o] = v;
      }
    }
  });
}

void matmul_prefill(apr_device& device, const MatmulView& m) {
  const apr_weight& w = *m.w;
  const IsaKernels& k = device.kernels;
  uint64_t tile_rows = kPrefillTileBytes / (w.n_cols * sizeof(float));
  tile_rows = std::clamp<uint64_t>(tile_rows / 4 * 4, 4, 64);
  const uint64_t n_tiles = (w.n_rows + tile_rows - 1) / tile_rows;
  device.pool.run(n_tiles, [&](size_t tile) {
    thread_local std::vector<float> scratch;
    const uint64_t o0 = tile * tile_rows;
    const uint64_t n_w = std::min(tile_rows, w.n_rows - o0);
    if (scratch.size() < n_w * w.n_cols) scratch.resize(n_w * w.n_cols);
    for (uint64_t i = 0; i < n_w; ++i)
      k.decode_row(w.format->type, w.row(o0 + i), scratch.data() + i * w.n_cols, w.n_cols);
    // The decoded tile stays in cache while x streams past it in chunks.
    for (uint64_t r0 = 0; r0 < m.n_rows; r0 += kPrefillXRowsPerChunk) {
      const uint64_t n_x = std::min<uint64_t>(kPrefillXRowsPerChunk, m.n_rows - r0);
      float* y = m.y + r0 * m.y_stride + o0;
      k.dot_tile(scratch.data(), w.n_cols, n_w, m.x + r0 * m.x_stride, m.x_stride, n_x, y,
                 m.y_stride, w.n_cols);
      if (m.bias)
        for (uint64_t r = 0; r < n_x; ++r)
          for (uint64_t i = 0; i < n_w; ++i) y[r * m.y_stride + i] += m.bias[o0 + i];
    }
  });
}

}  // namespace

void run_matmul(apr_device& device, const apr_matmul_args& a) {
  if (!a.weight) invalid("weight is NULL");
  const apr_weight& w = *a.weight;
  const uint64_t x_stride = a.x_row_stride ? a.x_row_stride : w.n_cols;
  const uint64_t y_stride = a.y_row_stride ? a.y_row_stride : w.n_rows;
  if (x_stride < w.n_cols)
    invalid("x_row_stride " + num(x_stride) + " is smaller than the weight '" + w.name +
            "' n_cols " + num(w.n_cols));
  if (y_stride < w.n_rows)
    invalid("y_row_stride " + num(y_stride) + " is smaller than the weight '" + w.name +
            "' n_rows " + num(w.n_rows));
  MatmulView m{&w, nullptr, x_stride, a.n_rows, nullptr, nullptr, y_stride};
  m.x = checked_view(a.x, a.x_offset, a.n_rows, w.n_cols, x_stride, "x");
  m.y = checked_view(a.y, a.y_offset, a.n_rows, w.n_rows, y_stride, "y");
  const uint64_t y_bytes = view_bytes(a.n_rows, w.n_rows, y_stride);
  if (views_overlap(a.x, a.x_offset, view_bytes(a.n_rows, w.n_cols, x_stride), a.y, a.y_offset,
                    y_bytes))
    invalid("x and y overlap");
  if (a.bias) {
    m.bias = checked_span(a.bias, a.bias_offset, w.n_rows, "bias");
    if (views_overlap(a.bias, a.bias_offset, w.n_rows * sizeof(float), a.y, a.y_offset, y_bytes))
      invalid("bias and y overlap");
  }
  if (a.n_rows == 0) return;
  if (a.n_rows <= kMaxDecodeRows)
    matmul_decode(device, m);
  else
    matmul_prefill(device, m);
}

}  // namespace apr_cpu
