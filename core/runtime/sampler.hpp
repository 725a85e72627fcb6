// SPDX-License-Identifier: MIT
// Chooses the next token from logits: greedy at temperature 0, otherwise temperature, top-k and
// top-p (nucleus) filtering, drawn from a seeded generator so runs are reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "common/logit_math.hpp"  // argmax, the greedy choice

namespace apr {

struct SamplingParams {
  float temperature = 0.8f;  // 0 = greedy
  uint32_t top_k = 40;       // 0 = whole vocabulary
  float top_p = 0.95f;       // 1 = off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  int32_t sample(std::span<const float> logits);

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace apr
