// SPDX-License-Identifier: MIT
// Chooses the next token from logits, with llama.cpp's samplers applied in llama.cpp's default
// order (common/sampling.cpp builds penalties -> top-k -> top-p -> min-p -> temperature -> dist):
//   1. penalties on the tokens of the last repeat_last_n accepted tokens: repeat_penalty divides a
//      positive logit and multiplies a negative one, then count * frequency_penalty +
//      presence_penalty is subtracted (count = occurrences in the window);
//   2. greedy at temperature 0: the largest penalized logit (the steps below never drop it);
//   3. top-k; 4. top-p (nucleus, at the requested temperature); 5. min-p: drops tokens whose
//      probability before temperature is below min_p times the likeliest's, as llama.cpp does
//      (min-p comes before temperature in its chain); 6. a seeded draw at the temperature.
// With the defaults (no penalty) greedy is argmax over the raw logits, bit for bit as before.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/logit_math.hpp"  // argmax, the greedy choice

namespace apr {

// Defaults are llama.cpp's (common/common.h, common_params_sampling).
struct SamplingParams {
  float temperature = 0.8f;  // 0 = greedy
  uint32_t top_k = 40;       // 0 = whole vocabulary
  float top_p = 0.95f;       // 1 = off
  uint64_t seed = 0;
  float min_p = 0.05f;             // 0 = off
  float repeat_penalty = 1.0f;     // 1 = off
  int32_t repeat_last_n = 64;      // -1 = every accepted token (the whole context), 0 = off
  float frequency_penalty = 0.0f;  // 0 = off
  float presence_penalty = 0.0f;   // 0 = off
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Records a token of the sequence (prompt and generated alike, as llama.cpp's sampler accepts
  // them) for the penalties' window.
  void accept(int32_t token);
  int32_t sample(std::span<const float> logits);

 private:
  bool penalizes() const;

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
  std::deque<int32_t> window_;                    // the last repeat_last_n accepted tokens
  std::unordered_map<int32_t, uint32_t> counts_;  // occurrences of each token in window_
};

}  // namespace apr
