// SPDX-License-Identifier: MIT
#include "runtime/sampler.hpp"

#include <algorithm>
#include <cmath>

namespace apr {

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(std::span<const float> logits) {
  if (params_.temperature <= 0.0f) return argmax(logits);

  candidates_.clear();
  candidates_.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i)
    candidates_.emplace_back(logits[i], static_cast<int32_t>(i));
  auto higher = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t k = candidates_.size();
  if (params_.top_k > 0 && params_.top_k < k) {
    k = params_.top_k;
    std::partial_sort(candidates_.begin(), candidates_.begin() + k, candidates_.end(), higher);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), higher);
  }
  candidates_.resize(k);

  // Softmax at the requested temperature, in double so tiny probabilities do not vanish.
  std::vector<double> p(k);
  const double top = candidates_[0].first;
  double sum = 0;
  for (size_t i = 0; i < k; ++i) {
    p[i] = std::exp((candidates_[i].first - top) / params_.temperature);
    sum += p[i];
  }
  size_t keep = k;
  if (params_.top_p < 1.0f) {
    double acc = 0;
    for (size_t i = 0; i < k; ++i) {
      acc += p[i] / sum;
      if (acc >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  std::discrete_distribution<size_t> pick(p.begin(), p.begin() + keep);
  return candidates_[pick(rng_)].second;
}

}  // namespace apr
