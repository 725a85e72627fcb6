// SPDX-License-Identifier: MIT
// The prompt → tokens → text loop: prefill, then one token at a time until an end-of-generation
// token, the token limit or the end of the context.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sampler.hpp"
#include "runtime/session.hpp"

namespace apr {

struct GenerationParams {
  uint32_t max_tokens = 128;
  SamplingParams sampling;
  bool keep_logits = false;  // fill GenerationResult::logits (one row per generated token)
  bool ignore_eos = false;   // keep going past end-of-generation tokens (llama.cpp --ignore-eos)
  // Tokens already in the KV cache before the prompt (apr chat's earlier turns). Only the
  // sampler's penalties look at them, so that they see the whole conversation as llama.cpp's do.
  std::span<const int32_t> history;
  // Checked after every token; when it reads true generation stops with stop_reason
  // "interrupted" (a signal handler sets it: Ctrl-C ends an answer, not the program).
  const std::atomic<bool>* interrupt = nullptr;
};

struct GenerationResult {
  std::vector<int32_t> generated;
  std::string stop_reason;  // "eos", "max_tokens", "context" or "interrupted"
  double prefill_seconds = 0;
  double decode_seconds = 0;
  uint32_t decode_steps = 0;  // forward calls after the prefill
  std::vector<std::vector<float>> logits;
};

// on_token receives each generated id as soon as it is chosen (before the next forward pass).
GenerationResult generate(Session& session, std::span<const int32_t> prompt,
                          const GenerationParams& params,
                          const std::function<void(int32_t)>& on_token = {});

}  // namespace apr
