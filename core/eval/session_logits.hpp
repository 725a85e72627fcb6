// SPDX-License-Identifier: MIT
// The LogitsSource of a runtime Session: the model on one backend, behind its KV cache.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "eval/perplexity.hpp"
#include "runtime/session.hpp"

namespace apr::eval {

// `session` must have been made with SessionOptions::logits_every_row and must outlive this.
// forward_rows() takes at most the session's batch size, so the session holds one batch of
// logit rows at a time.
class SessionLogits final : public LogitsSource {
 public:
  SessionLogits(Session& session, std::string name) : session_(session), name_(std::move(name)) {}

  std::string name() const override { return name_; }
  uint32_t n_vocab() const override { return session_.model().config().n_vocab; }
  uint32_t max_rows() const override { return session_.batch_size(); }
  void reset() override { session_.reset(); }
  void prefill(std::span<const int32_t> tokens) override {
    if (!tokens.empty()) session_.forward(tokens, LogitRows::kLast);
  }
  std::span<const float> forward_rows(std::span<const int32_t> tokens) override {
    const std::vector<float>& logits = session_.forward(tokens, LogitRows::kEvery);
    return {logits.data(), tokens.size() * size_t(n_vocab())};
  }

 private:
  Session& session_;
  std::string name_;
};

}  // namespace apr::eval
