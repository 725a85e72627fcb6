// SPDX-License-Identifier: MIT
// Arithmetic on one row of logits, in double where it sums: the greedy choice, log-sum-exp and
// the KL divergence of two rows' softmax distributions. Shared by the sampler, apr perplexity
// (core/eval) and the lm_head metrics of trace comparison, so every verdict means the same.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

#include "common/error.hpp"

namespace apr {

// Index of the largest logit; the lowest index wins ties, as in every reference we compare to.
inline int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[size_t(best)]) best = static_cast<int32_t>(i);
  return best;
}

// log(sum_i exp(x_i)) in double, shifted by the maximum. Not finite when a logit is NaN or +inf
// (or when every logit is -inf).
inline double log_sum_exp(std::span<const float> logits) {
  // A NaN never becomes the maximum (std::max keeps the left side), but exp(NaN - m) makes the
  // sum NaN, so NaN propagates without a test in the loop.
  float m = -std::numeric_limits<float>::infinity();
  for (float v : logits) m = std::max(m, v);
  if (!std::isfinite(m)) return m;  // +inf, or -inf for an empty or all -inf row
  double sum = 0;
  const double md = m;
  for (float v : logits) sum += std::exp(double(v) - md);
  return md + std::log(sum);
}

// KL(P || Q) = sum_i p_i (log p_i - log q_i) of the two distributions softmax(logits_p) and
// softmax(logits_q), in double, with each row's log_sum_exp given. Terms with p_i == 0 count 0.
// Rounding can make a KL of identical rows -0 or a few 1e-17 below zero; it is clamped to 0.
// Throws apr::Error when the rows differ in size.
inline double kl_divergence(std::span<const float> logits_p, double lse_p,
                            std::span<const float> logits_q, double lse_q) {
  if (logits_p.size() != logits_q.size())
    throw Error("kl_divergence: the two rows have different sizes");
  double kl = 0;
  for (size_t i = 0; i < logits_p.size(); ++i) {
    const double lp = double(logits_p[i]) - lse_p;
    const double p = std::exp(lp);
    if (p == 0) continue;  // 0 * log(0 / q) = 0, also where q is 0
    kl += p * (lp - (double(logits_q[i]) - lse_q));
  }
  return kl < 0 ? 0.0 : kl;  // keeps NaN
}

inline double kl_divergence(std::span<const float> logits_p, std::span<const float> logits_q) {
  return kl_divergence(logits_p, log_sum_exp(logits_p), logits_q, log_sum_exp(logits_q));
}

}  // namespace apr
