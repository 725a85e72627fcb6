// SPDX-License-Identifier: MIT
// Causal grouped-query attention over the KV cache. Each (head, query row) pair is one
// independent task, so the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "arg_checks.hpp"
#include "fault_injection.hpp"
#include "kernels.hpp"

namespace apr_cpu {

void run_attention(apr_device& device, const apr_attention_args& a) {
  if (a.n_heads == 0 || a.n_kv_heads == 0 || a.n_heads % a.n_kv_heads != 0)
    invalid("n_heads " + num(a.n_heads) + " is not a positive multiple of n_kv_heads " +
            num(a.n_kv_heads));
  if (a.head_dim == 0) invalid("head_dim is 0");
  if (!std::isfinite(a.scale)) invalid("scale is not finite");
  const uint64_t q_width = uint64_t{a.n_heads} * a.head_dim;
  const uint64_t kv_dim = uint64_t{a.n_kv_heads} * a.head_dim;
  const uint64_t q_stride = a.q_row_stride ? a.q_row_stride : q_width;
  if (q_stride < q_width) invalid("q_row_stride " + num(q_stride) + " < n_heads * head_dim");
  const uint64_t n_kv = uint64_t{a.pos0} + a.n_rows;
  const float* q = checked_view(a.q, a.q_offset, a.n_rows, q_width, q_stride, "q");
  const float* kc = checked_view(a.k_cache, 0, n_kv, kv_dim, kv_dim, "k_cache");
  const float* vc = checked_view(a.v_cache, 0, n_kv, kv_dim, kv_dim, "v_cache");
  float* out = checked_view(a.out, a.out_offset, a.n_rows, q_width, q_width, "out");
  const uint64_t out_bytes = view_bytes(a.n_rows, q_width, q_width);
  if (views_overlap(a.q, a.q_offset, view_bytes(a.n_rows, q_width, q_stride), a.out, a.out_offset,
                    out_bytes) ||
      views_overlap(a.k_cache, 0, n_kv * kv_dim * 4, a.out, a.out_offset, out_bytes) ||
      views_overlap(a.v_cache, 0, n_kv * kv_dim * 4, a.out, a.out_offset, out_bytes))
    invalid("out overlaps q or the caches");
  if (a.n_rows == 0) return;

  const bool emit_scores = device.sink_wants(APR_STAGE_ATTN_SCORES, a.layer);
  const bool emit_softmax = device.sink_wants(APR_STAGE_ATTN_SOFTMAX, a.layer);
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
    fault::perturb(APR_STAGE_ATTN_SCORES, a.layer, scores.data(), 1, n_valid, n_valid);
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
    fault::perturb(APR_STAGE_ATTN_SOFTMAX, a.layer, scores.data(), 1, n_valid, n_valid);
    if (emit_softmax) std::memcpy(all_probs.data() + emit_at, scores.data(), n_valid * 4);

    float* oh = out + r * q_width + uint64_t{h} * a.head_dim;
    std::fill(oh, oh + a.head_dim, 0.0f);
    for (uint64_t t = 0; t < n_valid; ++t)
      k.axpy(scores[t], vc + t * kv_dim + kv_col, oh, a.head_dim);
  });

  const uint64_t shape[3] = {a.n_heads, a.n_rows, n_kv};
  if (emit_scores) emit_tensor(device, APR_STAGE_ATTN_SCORES, a.layer, all_scores.data(), 3, shape);
  if (emit_softmax)
    emit_tensor(device, APR_STAGE_ATTN_SOFTMAX, a.layer, all_probs.data(), 3, shape);
}

}  // namespace apr_cpu
