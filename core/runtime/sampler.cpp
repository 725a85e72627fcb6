// SPDX-License-Identifier: MIT
#include "runtime/sampler.hpp"

#include <algorithm>
#include <cmath>

namespace apr {

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

bool Sampler::penalizes() const {
  return params_.repeat_last_n != 0 &&
         (params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
          params_.presence_penalty != 0.0f);
}

void Sampler::accept(int32_t token) {
  if (!penalizes()) return;  // nothing to remember: the history costs nothing when unused
  ++counts_[token];
  if (params_.repeat_last_n < 0) return;  // the whole context: counts only, no window to slide
  window_.push_back(token);
  if (window_.size() > size_t(params_.repeat_last_n)) {
    const auto oldest = counts_.find(window_.front());
    if (--oldest->second == 0) counts_.erase(oldest);
    window_.pop_front();
  }
}

int32_t Sampler::sample(std::span<const float> logits) {
  const bool penalize = penalizes() && !counts_.empty();
  if (params_.temperature <= 0.0f && !penalize) return argmax(logits);

  candidates_.clear();
  candidates_.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i)
    candidates_.emplace_back(logits[i], static_cast<int32_t>(i));
  if (penalize) {
    // Still in id order here, so candidates_[id] is token id.
    for (const auto& [id, count] : counts_) {
      if (id < 0 || size_t(id) >= candidates_.size()) continue;
      float& l = candidates_[size_t(id)].first;
      // Dividing a negative logit would make the token likelier; llama.cpp multiplies it instead.
      l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
      l -= float(count) * params_.frequency_penalty + params_.presence_penalty;
    }
  }
  if (params_.temperature <= 0.0f) {
    // The first of equal maxima, as argmax picks.
    return std::max_element(candidates_.begin(), candidates_.end(),
                            [](const auto& a, const auto& b) { return a.first < b.first; })
        ->second;
  }

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
  if (params_.min_p > 0.0f) {
    // p_i >= min_p * p_max at temperature 1 is logit_i >= top + ln(min_p) (llama.cpp's test);
    // the likeliest token always stays.
    const double floor = std::log(double(params_.min_p));
    size_t n = 1;
    while (n < keep && candidates_[n].first - top >= floor) ++n;
    keep = n;
  }
  std::discrete_distribution<size_t> pick(p.begin(), p.begin() + keep);
  return candidates_[pick(rng_)].second;
}

}  // namespace apr
