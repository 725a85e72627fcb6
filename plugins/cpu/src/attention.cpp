// SPDX-License-Identifier: MIT
// Causal grouped-query attention over the KV cache, with ABI 1.3's sliding window and score
// soft-cap. Two paths, each serving prefill and decode alike (a decode step is the one-row case):
//
// The blocked path (nothing traced): FlashAttention-style. The cache is cut into key blocks of
// kKeyBlock rows at absolute positions 0, kKeyBlock, ...; a task takes one KV head, the query
// heads that share it and up to kRowBlock query rows, and reads each K/V block once for all of
// them (scores by dot_tile, values by weighted_sum). Every (head, row) gets from each key block
// it sees a partial (max, sum of exponentials, weighted sum of values) computed from that block
// alone, and the partials are folded in key-block order. So a row's bits depend only on its own
// position and the data, not on the row block, the task split or the thread count: decode with
// few rows splits the key blocks across threads too, stores the partials and folds them after.
//
// The materialising path (ATTN_SCORES/ATTN_SOFTMAX traced for the layer, or a fault injected into
// them): each (head, query row) pair is one task that forms its whole score row, a softmax in
// double and the weighted sum, so the emitted rows are exactly the ones its output used.
#include <algorithm>
#include <cmath>
#include <cstdlib>
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

// Cache rows per key block, and query rows per task of the blocked path. A block's K and V
// slices of one KV head (128 x head_dim floats each) stay in L2 while all the group's heads and
// rows of the task use them.
constexpr uint64_t kKeyBlock = 128;
constexpr uint32_t kRowBlock = 8;

// One (head, row)'s softmax state over the key blocks folded so far: running max, sum of
// exponentials (relative to the max) and the values weighted by them.
struct Partial {
  float max = 0.0f;
  double sum = 0.0;
  bool seen = false;
};

// Folds block partial (m, s, acc) into (state, a), in the one arithmetic every path uses.
void fold(Partial& state, float* a, float m, double s, const float* acc, uint64_t n) {
  if (!state.seen) {
    state = {m, s, true};
    std::memcpy(a, acc, n * 4);
    return;
  }
  const float m_new = std::max(state.max, m);
  const double old_scale = std::exp(static_cast<double>(state.max) - m_new);
  const double new_scale = std::exp(static_cast<double>(m) - m_new);
  const float fo = static_cast<float>(old_scale), fn = static_cast<float>(new_scale);
  for (uint64_t j = 0; j < n; ++j) a[j] = fo * a[j] + fn * acc[j];
  state.sum = state.sum * old_scale + s * new_scale;
  state.max = m_new;
}

struct BlockedAttention {
  const apr_attention_args& a;
  const IsaKernels& k;
  uint64_t q_width, kv_dim, q_stride, n_kv, n_blocks;
  uint32_t window, group, n_row_blocks;
  float softcap;
  const float* q;
  const float* kc;
  const float* vc;
  float* out;
  // Split over key blocks: per (head, row, block) the block's partial and its acc.
  bool split = false;
  std::vector<Partial> parts;
  std::vector<float> part_acc;

  BlockedAttention(const apr_device& device, const apr_attention_args& args)
      : a(args),
        k(device.kernels),
        q_width(uint64_t{args.n_heads} * args.head_dim),
        kv_dim(uint64_t{args.n_kv_heads} * args.head_dim),
        q_stride(args.q_row_stride ? args.q_row_stride : q_width),
        n_kv(uint64_t{args.pos0} + args.n_rows),
        n_blocks((n_kv + kKeyBlock - 1) / kKeyBlock),
        window(apr_sdk::attention_window(args)),
        group(args.n_heads / args.n_kv_heads),
        n_row_blocks((args.n_rows + kRowBlock - 1) / kRowBlock),
        softcap(apr_sdk::attention_softcap(args)),
        q(f32_at(args.q, args.q_offset)),
        kc(f32_at(args.k_cache, 0)),
        vc(f32_at(args.v_cache, 0)),
        out(f32_at(args.out, args.out_offset)) {
    // Too few (KV head, row block) tasks to keep the threads busy: one task per key block as well.
    // The bits are the same either way (see the top of the file).
    const uint64_t units = uint64_t{a.n_kv_heads} * n_row_blocks;
    split = n_blocks > 1 && units < 2 * uint64_t{device.pool.size()} && a.n_rows <= 4 * kRowBlock;
    if (split) {
      const uint64_t n = uint64_t{a.n_heads} * a.n_rows * n_blocks;
      parts.assign(n, Partial{});
      part_acc.resize(n * a.head_dim);
    }
  }

  uint64_t tasks() const { return uint64_t{a.n_kv_heads} * n_row_blocks * (split ? n_blocks : 1); }

  // Task t: KV head g, row block rb (the last, longest ones first), key blocks [b0, b1).
  void task(uint64_t t) {
    const uint64_t per_head = uint64_t{n_row_blocks} * (split ? n_blocks : 1);
    const uint32_t g = static_cast<uint32_t>(t / per_head);
    uint64_t rest = t % per_head;
    uint64_t b0 = 0, b1 = n_blocks;
    if (split) {
      b0 = rest % n_blocks;
      b1 = b0 + 1;
      rest /= n_blocks;
    }
    const uint32_t rb = n_row_blocks - 1 - static_cast<uint32_t>(rest);
    run_block(g, rb * kRowBlock, std::min(a.n_rows, (rb + 1) * kRowBlock), b0, b1);
  }

  void run_block(uint32_t g, uint32_t r0, uint32_t r1, uint64_t b0, uint64_t b1) {
    thread_local std::vector<float> qp, sc, acc, state_acc;
    thread_local std::vector<Partial> state;
    const uint64_t hd = a.head_dim, nr = r1 - r0, nq = nr * group;
    qp.resize(nq * hd);
    sc.resize(nq * kKeyBlock);
    acc.resize(hd);
    if (!split) {
      state.assign(nq, Partial{});
      state_acc.resize(nq * hd);
    }
    // The task's queries, row-major over (row, head of the group).
    for (uint64_t ri = 0; ri < nr; ++ri)
      std::memcpy(qp.data() + ri * group * hd, q + (r0 + ri) * q_stride + uint64_t{g} * group * hd,
                  group * hd * 4);
    const uint64_t first = visible_keys(uint64_t{a.pos0} + r0, window).first;
    const uint64_t end = uint64_t{a.pos0} + r1;
    b0 = std::max(b0, first / kKeyBlock);
    b1 = std::min(b1, (end + kKeyBlock - 1) / kKeyBlock);
    const float* kg = kc + uint64_t{g} * hd;
    const float* vg = vc + uint64_t{g} * hd;
    for (uint64_t b = b0; b < b1; ++b) {
      const uint64_t lo = std::max(b * kKeyBlock, first);
      const uint64_t hi = std::min((b + 1) * kKeyBlock, end);
      if (lo >= hi) continue;
      k.dot_tile(kg + lo * kv_dim, kv_dim, hi - lo, qp.data(), hd, nq, sc.data(), kKeyBlock, hd);
      for (uint64_t ri = 0; ri < nr; ++ri) {
        const KeyRange keys = visible_keys(uint64_t{a.pos0} + r0 + ri, window);
        const uint64_t kb = std::max(lo, keys.first), ke = std::min(hi, keys.end);
        if (kb >= ke) continue;
        const uint64_t n = ke - kb;
        for (uint32_t hh = 0; hh < group; ++hh) {
          const uint64_t iq = ri * group + hh;
          float* s = sc.data() + iq * kKeyBlock + (kb - lo);
          for (uint64_t i = 0; i < n; ++i) s[i] *= a.scale;
          if (softcap > 0.0f)
            for (uint64_t i = 0; i < n; ++i) s[i] = soft_cap(s[i], softcap);
          float m = s[0];
          for (uint64_t i = 1; i < n; ++i) m = std::max(m, s[i]);
          const double sum = k.exp_shifted(s, n, m);
          std::fill(acc.begin(), acc.end(), 0.0f);
          k.weighted_sum(s, n, vg + kb * kv_dim, kv_dim, acc.data(), hd);
          if (split) {
            const uint64_t h = uint64_t{g} * group + hh;
            const uint64_t at = ((h * a.n_rows) + r0 + ri) * n_blocks + b;
            parts[at] = {m, sum, true};
            std::memcpy(part_acc.data() + at * hd, acc.data(), hd * 4);
          } else {
            fold(state[iq], state_acc.data() + iq * hd, m, sum, acc.data(), hd);
          }
        }
      }
    }
    if (split) return;
    for (uint64_t ri = 0; ri < nr; ++ri)
      for (uint32_t hh = 0; hh < group; ++hh) {
        const uint64_t iq = ri * group + hh;
        finish(state[iq], state_acc.data() + iq * hd,
               out + (r0 + ri) * q_width + (uint64_t{g} * group + hh) * hd);
      }
  }

  void finish(const Partial& st, const float* acc_in, float* o) const {
    for (uint64_t j = 0; j < a.head_dim; ++j)
      o[j] = static_cast<float>(static_cast<double>(acc_in[j]) / st.sum);
  }

  // After a split run: fold each (head, row)'s block partials in block order.
  void fold_parts(uint64_t hr) {
    thread_local std::vector<float> a_acc;
    const uint64_t hd = a.head_dim;
    a_acc.resize(hd);
    Partial st;
    for (uint64_t b = 0; b < n_blocks; ++b) {
      const uint64_t at = hr * n_blocks + b;
      if (parts[at].seen)
        fold(st, a_acc.data(), parts[at].max, parts[at].sum, part_acc.data() + at * hd, hd);
    }
    const uint64_t h = hr / a.n_rows, r = hr % a.n_rows;
    finish(st, a_acc.data(), out + r * q_width + h * hd);
  }
};

// APR_CPU_ATTN=rows forces the materialising path everywhere (for comparisons).
bool blocked_allowed() {
  static const bool allowed = [] {
    const char* v = std::getenv("APR_CPU_ATTN");
    return v == nullptr || std::strcmp(v, "rows") != 0;
  }();
  return allowed;
}

}  // namespace

void run_attention(apr_device& device, const apr_attention_args& a) {
  if (a.n_rows == 0) return;
  if (blocked_allowed() && !device.wants(APR_STAGE_ATTN_SCORES, a.layer) &&
      !device.wants(APR_STAGE_ATTN_SOFTMAX, a.layer) && !fault::perturbs_attention_rows(a.layer)) {
    BlockedAttention call(device, a);
    device.pool.run(call.tasks(), [&](size_t t) { call.task(t); });
    if (call.split)
      device.pool.run(uint64_t{a.n_heads} * a.n_rows, [&](size_t hr) { call.fold_parts(hr); });
    fault::after_attention(device, a);
    return;
  }
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
