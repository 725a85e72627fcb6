// SPDX-License-Identifier: MIT
// The sampler's llama.cpp-style filters and penalties against values worked out by hand. A
// penalized logit is pinned between two neighbours it must beat or lose to under greedy
// decoding; which tokens a filter keeps is the set of tokens drawn in many seeded draws.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <vector>

#include "runtime/sampler.hpp"

using apr::Sampler;
using apr::SamplingParams;

namespace {

SamplingParams greedy_with(float repeat, int32_t last_n, float frequency, float presence) {
  SamplingParams p;
  p.temperature = 0;
  p.repeat_penalty = repeat;
  p.repeat_last_n = last_n;
  p.frequency_penalty = frequency;
  p.presence_penalty = presence;
  return p;
}

int32_t pick(const SamplingParams& p, const std::vector<int32_t>& history,
             const std::vector<float>& logits) {
  Sampler s(p);
  for (int32_t id : history) s.accept(id);
  return s.sample(logits);
}

// Every token drawn in 4000 draws (each kept token here has probability >= 5%).
std::set<int32_t> drawn(const SamplingParams& p, const std::vector<float>& logits) {
  Sampler s(p);
  std::set<int32_t> seen;
  for (int i = 0; i < 4000; ++i) seen.insert(s.sample(logits));
  return seen;
}

// Logits of the probabilities 0.40, 0.25, 0.20, 0.10, 0.05 at temperature 1.
const std::vector<float> kFive = {std::log(0.40f), std::log(0.25f), std::log(0.20f),
                                  std::log(0.10f), std::log(0.05f)};

SamplingParams unfiltered(float temperature, float min_p) {
  SamplingParams p;
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = min_p;
  p.seed = 11;
  return p;
}

}  // namespace

TEST_CASE("min-p keeps exactly the tokens with p >= min_p * p_max") {
  // 0.3 * 0.40 = 0.12: 0.25 and 0.20 stay, 0.10 and 0.05 go.
  CHECK(drawn(unfiltered(1, 0.3f), kFive) == std::set<int32_t>{0, 1, 2});
  // 0.2 * 0.40 = 0.08: only 0.05 goes.
  CHECK(drawn(unfiltered(1, 0.2f), kFive) == std::set<int32_t>{0, 1, 2, 3});
  CHECK(drawn(unfiltered(1, 0), kFive) == std::set<int32_t>{0, 1, 2, 3, 4});
  // 1: only the likeliest.
  CHECK(drawn(unfiltered(1, 1), kFive) == std::set<int32_t>{0});
}

TEST_CASE("min-p is measured before temperature, as in llama.cpp's chain") {
  // At temperature 2 the probabilities are proportional to sqrt(0.40, 0.25, 0.20, 0.10, 0.05):
  // measured there, 0.3 * p_max would keep all five. llama.cpp's min-p runs before temperature.
  CHECK(drawn(unfiltered(2, 0.3f), kFive) == std::set<int32_t>{0, 1, 2});
}

TEST_CASE("min-p and top-p: the stricter one wins") {
  SamplingParams p = unfiltered(1, 0.2f);
  p.top_p = 0.6f;  // 0.40 + 0.25 = 0.65 >= 0.6: tokens 0 and 1
  CHECK(drawn(p, kFive) == std::set<int32_t>{0, 1});
}

TEST_CASE("repeat penalty divides a positive logit") {
  // Token 0 was seen: 3.0 / 2 = 1.5, between 1.4 and 1.6.
  const auto p = greedy_with(2, 64, 0, 0);
  CHECK(pick(p, {0}, {3.0f, 1.6f, 1.4f}) == 1);
  CHECK(pick(p, {0}, {3.0f, 1.4f, 1.45f}) == 0);
}

TEST_CASE("repeat penalty multiplies a negative logit") {
  // -1.0 * 2 = -2.0, between -1.9 and -2.1 (dividing would give -0.5 and keep token 0 first).
  const auto p = greedy_with(2, 64, 0, 0);
  CHECK(pick(p, {0}, {-1.0f, -1.9f, -5.0f}) == 1);
  CHECK(pick(p, {0}, {-1.0f, -2.1f, -5.0f}) == 0);
}

TEST_CASE("frequency and presence penalties subtract count * f + p") {
  // History: token 0 three times, token 1 once. f = 0.5, p = 1:
  // token 0 loses 3 * 0.5 + 1 = 2.5, token 1 loses 0.5 + 1 = 1.5.
  const auto p = greedy_with(1, 64, 0.5f, 1.0f);
  const std::vector<int32_t> history = {0, 0, 0, 1};
  CHECK(pick(p, history, {5.0f, -9.0f, 2.45f}) == 0);  // 2.5 > 2.45
  CHECK(pick(p, history, {5.0f, -9.0f, 2.55f}) == 2);  // 2.5 < 2.55
  CHECK(pick(p, history, {-9.0f, 4.0f, 2.45f}) == 1);  // 2.5 > 2.45
  CHECK(pick(p, history, {-9.0f, 4.0f, 2.55f}) == 2);
  // Presence alone: the same 1 for any count.
  const auto presence = greedy_with(1, 64, 0, 1.0f);
  CHECK(pick(presence, history, {3.0f, 3.0f, 1.95f}) == 0);  // both 2.0, the first wins the tie
  CHECK(pick(presence, history, {3.0f, 3.0f, 2.05f}) == 2);
}

TEST_CASE("repeat-last-n is the window the penalties look at") {
  const std::vector<float> logits = {3.0f, 3.5f, 3.4f, 2.0f};
  const std::vector<int32_t> history = {0, 1, 2};
  // Last 2: tokens 1 and 2 halved (1.75, 1.7); token 0 keeps 3.0.
  CHECK(pick(greedy_with(2, 2, 0, 0), history, logits) == 0);
  // Last 3: 1.5, 1.75, 1.7 and token 3's 2.0 wins.
  CHECK(pick(greedy_with(2, 3, 0, 0), history, logits) == 3);
  // 0: off.
  CHECK(pick(greedy_with(2, 0, 0, 0), history, logits) == 1);
  // -1: everything accepted, however long ago.
  std::vector<int32_t> long_history = {1};
  long_history.insert(long_history.end(), 500, 3);
  CHECK(pick(greedy_with(2, -1, 0, 0), long_history, {0.0f, 3.0f, 1.6f, -9.0f}) == 2);
  CHECK(pick(greedy_with(2, 64, 0, 0), long_history, {0.0f, 3.0f, 1.6f, -9.0f}) == 1);
}

TEST_CASE("counts are taken within the window") {
  // Last 3 of {0, 0, 0, 0, 1} are {0, 0, 1}: token 0 counted twice, 4 - 2 * 1 = 2.0.
  const auto p = greedy_with(1, 3, 1.0f, 0);
  const std::vector<int32_t> history = {0, 0, 0, 0, 1};
  CHECK(pick(p, history, {4.0f, -9.0f, 1.9f}) == 0);
  CHECK(pick(p, history, {4.0f, -9.0f, 2.1f}) == 2);
}

TEST_CASE("penalties come before top-k") {
  // Top-k 1 after penalties keeps the penalized leader, token 1, whatever the draw.
  SamplingParams p = greedy_with(2, 64, 0, 0);
  p.temperature = 1;
  p.top_k = 1;
  Sampler s(p);
  s.accept(0);
  for (int i = 0; i < 50; ++i) CHECK(s.sample(std::vector<float>{3.0f, 2.0f, 1.0f}) == 1);
}

TEST_CASE("the defaults penalize nothing") {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  SamplingParams greedy;
  greedy.temperature = 0;
  CHECK(pick(greedy, {1, 1, 1, 3}, logits) == 1);  // argmax: the first of the equal maxima

  // Seeded draws are the same whether or not tokens were accepted.
  SamplingParams sampled;
  sampled.seed = 5;
  Sampler fresh(sampled), seen(sampled);
  for (int32_t id : {1, 1, 3, 4, 4}) seen.accept(id);
  for (int i = 0; i < 200; ++i) CHECK(fresh.sample(logits) == seen.sample(logits));
}
