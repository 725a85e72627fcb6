// SPDX-License-Identifier: MIT
#include "runtime/generate.hpp"

#include <chrono>
#include <cmath>

#include "common/error.hpp"

namespace apr {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// NaN or infinite logits mean broken weights (forced past the load checks) or a broken backend;
// sampling from them would silently pick token 0 over and over.
void check_finite(const std::vector<float>& logits, size_t generated) {
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isfinite(logits[i]))
      throw Error("the forward pass produced a non-finite logit (token id " + std::to_string(i) +
                  ", after " + std::to_string(generated) +
                  " generated tokens): the model's weights or the backend are broken");
}

}  // namespace

GenerationResult generate(Session& session, std::span<const int32_t> prompt,
                          const GenerationParams& params,
                          const std::function<void(int32_t)>& on_token) {
  GenerationResult r;
  Sampler sampler(params.sampling);
  // Every token of the sequence feeds the penalties, prompt included, as llama.cpp's tools do.
  for (const int32_t id : params.history) sampler.accept(id);
  for (const int32_t id : prompt) sampler.accept(id);
  const Tokenizer& tok = session.model().tokenizer();
  if (params.max_tokens == 0) {
    r.stop_reason = "max_tokens";
    return r;
  }

  auto t0 = std::chrono::steady_clock::now();
  const std::vector<float>* logits = &session.forward(prompt);
  r.prefill_seconds = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  for (;;) {
    check_finite(*logits, r.generated.size());
    if (params.keep_logits) r.logits.push_back(*logits);
    const int32_t next = sampler.sample(*logits);
    sampler.accept(next);
    r.generated.push_back(next);
    if (on_token) on_token(next);
    if (!params.ignore_eos && tok.is_end_of_generation(next)) {
      r.stop_reason = "eos";
      break;
    }
    if (r.generated.size() >= params.max_tokens) {
      r.stop_reason = "max_tokens";
      break;
    }
    if (params.interrupt && params.interrupt->load()) {
      r.stop_reason = "interrupted";
      break;
    }
    if (session.position() >= session.context_size()) {
      r.stop_reason = "context";
      break;
    }
    logits = &session.forward(std::span<const int32_t>(&next, 1));
    ++r.decode_steps;
  }
  r.decode_seconds = seconds_since(t0);
  return r;
}

}  // namespace apr
