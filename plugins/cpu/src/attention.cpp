// SPDX-License-Identifier: MIT
// Causal grouped-query attention over the KV cache, with ABI 1.3's sliding window and score
// soft-cap. Each (head, query row) pair is one independent task that computes its row from start
// to end in a fixed order, so the result does not depend on the thread count. One path serves
// prefill and decode alike: a decode step is the one-row case.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "device.hpp"
#include "fault_injection.hpp"
#include "status.hpp"
#include "views.hpp"

namespace apr_cpu {

namespace {

// The cache rows [first, end) a query row at position pos sees: itself and, with a window W,
// only the W - 1 positions before it.
struct KeyRange {
  uint64_t first;
  uint64_t end;
  uint64_t size() const { return end - first; }
};

KeyRange visible_keys(uint64_t pos, uint32_t window) {
  const uint64_t end = pos + 1;
  return {window != 0 && end > window ? end - window : 0, end};
}

// c * tanh(s / c) in double, rounded once to the f32 score that the softmax and the trace share.
float soft_cap(float score, float cap) {
  return static_cast<float>(static_cast<double>(cap) *
                            std::tanh(static_cast<double>(score) / static_cast<double>(cap)));
}

// Softmax of n scores in place, the maximum subtracted, exponentials and their sum in double.
void softmax_in_place(float* s, uint64_t n) {
  thread_local std::vector<double> e;
  e.resize(n);
  float max_score = s[0];
  for (uint64_t t = 1; t < n; ++t) max_score = std::max(max_score, s[t]);
  double sum = 0.0;
  for (uint64_t t = 0; t < n; ++t) {
    e[t] = std::exp(static_cast<double>(s[t]) - max_score);
    sum += e[t];
  }
  for (uint64_t t = 0; t < n; ++t) s[t] = static_cast<float>(e[t] / sum);
}

// One call's operands and the traced grids (empty unless the sink wants them).
struct AttentionCall {
  const apr_attention_args& a;
  const IsaKernels& k;
  uint64_t q_width, kv_dim, q_stride, n_kv;
  uint32_t window;
  float softcap;
  const float* q;
  const float* kc;
  const float* vc;
  float* out;
  std::vector<float> scores, probs;  // n_heads x n_rows x n_kv, masked entries 0

  AttentionCall(const apr_device& device, const apr_attention_args& args)
      : a(args),
        k(device.kernels),
        q_width(uint64_t{args.n_heads} * args.head_dim),
        kv_dim(uint64_t{args.n_kv_heads} * args.head_dim),
        q_stride(args.q_row_stride ? args.q_row_stride : q_width),
        n_kv(uint64_t{args.pos0} + args.n_rows),
        window(apr_sdk::attention_window(args)),
        softcap(apr_sdk::attention_softcap(args)),
        q(f32_at(args.q, args.q_offset)),
        kc(f32_at(args.k_cache, 0)),
        vc(f32_at(args.v_cache, 0)),
        out(f32_at(args.out, args.out_offset)) {
    const uint64_t grid = uint64_t{args.n_heads} * args.n_rows * n_kv;
    if (device.wants(APR_STAGE_ATTN_SCORES, args.layer)) scores.assign(grid, 0.0f);
    if (device.wants(APR_STAGE_ATTN_SOFTMAX, args.layer)) probs.assign(grid, 0.0f);
  }

  // Query row r of head h: its scores over the visible keys, their softmax, the weighted sum of
  // the values. Emitted rows are written at their absolute key columns; the rest stays 0.
  // Tasks write disjoint rows of `out` and of the grids.
  void row(uint32_t h, uint32_t r) {
    thread_local std::vector<float> s;
    const KeyRange keys = visible_keys(uint64_t{a.pos0} + r, window);
    const uint64_t n = keys.size();
    const uint64_t kv_col = uint64_t{h / (a.n_heads / a.n_kv_heads)} * a.head_dim;
    const float* qh = q + r * q_stride + uint64_t{h} * a.head_dim;
    const fault::Rows rows{a.pos0, a.n_rows, a.pos0};
    s.resize(n);
    for (uint64_t i = 0; i < n; ++i)
      s[i] = a.scale * k.dot(qh, kc + (keys.first + i) * kv_dim + kv_col, a.head_dim);
    if (softcap > 0.0f)
      for (uint64_t i = 0; i < n; ++i) s[i] = soft_cap(s[i], softcap);
    fault::perturb_row(APR_STAGE_ATTN_SCORES, a.layer, rows, r, s.data(), n, keys.first);
    const uint64_t emit_at = (uint64_t{h} * a.n_rows + r) * n_kv + keys.first;
    if (!scores.empty()) std::memcpy(scores.data() + emit_at, s.data(), n * 4);

    softmax_in_place(s.data(), n);
    fault::perturb_row(APR_STAGE_ATTN_SOFTMAX, a.layer, rows, r, s.data(), n, keys.first);
    if (!probs.empty()) std::memcpy(probs.data() + emit_at, s.data(), n * 4);

    float* oh = out + r * q_width + uint64_t{h} * a.head_dim;
    std::fill(oh, oh + a.head_dim, 0.0f);
    for (uint64_t i = 0; i < n; ++i)
      k.axpy(s[i], vc + (keys.first + i) * kv_dim + kv_col, oh, a.head_dim);
  }
};

}  // namespace

void run_attention(apr_device& device, const apr_attention_args& a) {
  if (a.n_rows == 0) return;
  AttentionCall call(device, a);
  device.pool.run(uint64_t{a.n_heads} * a.n_rows, [&](size_t task) {
    call.row(static_cast<uint32_t>(task / a.n_rows), static_cast<uint32_t>(task % a.n_rows));
  });
  if (!call.scores.empty())
    device.trace.emit(APR_STAGE_ATTN_SCORES, a.layer, call.scores.data(),
                      {a.n_heads, a.n_rows, call.n_kv});
  if (!call.probs.empty())
    device.trace.emit(APR_STAGE_ATTN_SOFTMAX, a.layer, call.probs.data(),
                      {a.n_heads, a.n_rows, call.n_kv});
  fault::after_attention(device, a);
}

}  // namespace apr_cpu
