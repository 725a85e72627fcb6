// SPDX-License-Identifier: MIT
// Causal grouped-query attention over the KV cache. Each (head, query row) pair is one
// independent task, so the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "device.hpp"
#include "fault_injection.hpp"
#include "status.hpp"
#include "views.hpp"

namespace apr_cpu {

void run_attention(apr_device& device, const apr_attention_args& a) {
  const uint64_t q_width = uint64_t{a.n_heads} * a.head_dim;
  const uint64_t kv_dim = uint64_t{a.n_kv_heads} * a.head_dim;
  const uint64_t q_stride = a.q_row_stride ? a.q_row_stride : q_width;
  const uint64_t n_kv = uint64_t{a.pos0} + a.n_rows;
  const float* q = f32_at(a.q, a.q_offset);
  const float* kc = f32_at(a.k_cache, 0);
  const float* vc = f32_at(a.v_cache, 0);
  float* out = f32_at(a.out, a.out_offset);
  if (a.n_rows == 0) return;

  const bool emit_scores = device.wants(APR_STAGE_ATTN_SCORES, a.layer);
  const bool emit_softmax = device.wants(APR_STAGE_ATTN_SOFTMAX, a.layer);
  std::vector<float> all_scores, all_probs;
  if (emit_scores) all_scores.assign(uint64_t{a.n_heads} * a.n_rows * n_kv, 0.0f);
  if (emit_softmax) all_probs.assign(uint64_t{a.n_heads} * a.n_rows * n_kv, 0.0f);

  const uint32_t group = a.n_heads / a.n_kv_heads;
  const IsaKernels& k = device.kernels;
  device.pool.run(uint64_t{a.n_heads} * a.n_rows, [&](size_t task) {
    thread_local std::vector<float> scores;
    const uint32_t h = static_cast<uint32_t>(task / a.n_rows);
    const uint32_t r = static_cast<uint32_t>(task % a.n_rows);
    const uint64_t n_valid = uint64_t{a.pos0} + r + 1;
    const uint64_t kv_col = uint64_t{h / group} * a.head_dim;
    const float* qh = q + r * q_stride + uint64_t{h} * a.head_dim;
    scores.resize(n_valid);
    for (uint64_t t = 0; t < n_valid; ++t)
      scores[t] = a.scale * k.dot(qh, kc + t * kv_dim + kv_col, a.head_dim);
    fault::perturb_row(APR_STAGE_ATTN_SCORES, a.layer, {a.pos0, a.n_rows, a.pos0}, r, scores.data(),
                       n_valid);
    const uint64_t emit_at = (uint64_t{h} * a.n_rows + r) * n_kv;
    if (emit_scores) std::memcpy(all_scores.data() + emit_at, scores.data(), n_valid * 4);

    // Softmax with the maximum subtracted, exponentials and their sum in double.
    float max_score = scores[0];
    for (uint64_t t = 1; t < n_valid; ++t) max_score = std::max(max_score, scores[t]);
    double sum = 0.0;
    thread_local std::vector<double> e;
    e.resize(n_valid);
    for (uint64_t t = 0; t < n_valid; ++t) {
      e[t] = std::exp(static_cast<double>(scores[t]) - max_score);
      sum += e[t];
    }
    for (uint64_t t = 0; t < n_valid; ++t) scores[t] = static_cast<float>(e[t] / sum);
    fault::perturb_row(APR_STAGE_ATTN_SOFTMAX, a.layer, {a.pos0, a.n_rows, a.pos0}, r,
                       scores.data(), n_valid);
    if (emit_softmax) std::memcpy(all_probs.data() + emit_at, scores.data(), n_valid * 4);

    float* oh = out + r * q_width + uint64_t{h} * a.head_dim;
    std::fill(oh, oh + a.head_dim, 0.0f);
    for (uint64_t t = 0; t < n_valid; ++t)
      k.axpy(scores[t], vc + t * kv_dim + kv_col, oh, a.head_dim);
  });

  if (emit_scores)
    device.trace.emit(APR_STAGE_ATTN_SCORES, a.layer, all_scores.data(),
                      {a.n_heads, a.n_rows, n_kv});
  if (emit_softmax)
    device.trace.emit(APR_STAGE_ATTN_SOFTMAX, a.layer, all_probs.data(),
                      {a.n_heads, a.n_rows, n_kv});
  fault::after_attention(device, a);
}

}  // namespace apr_cpu
