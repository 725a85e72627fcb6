// SPDX-License-Identifier: MIT
// Corpus-level evaluation of a model (apr perplexity): the perplexity of a tokenized text cut into
// chunks as llama.cpp's llama-perplexity does it, and optionally, position by position, how far a
// second backend's next-token distributions lie from the first's (KL divergence, top-1
// agreement). The arithmetic is in double; the logits come from a LogitsSource, so the chunking
// and scoring are testable without a model.
//
// The method (llama-perplexity's, with its default of 512 tokens per chunk):
//   - the text's tokens (with BOS in front when the tokenizer adds one) are cut into whole chunks
//     of n_ctx tokens; what is left over at the end is not evaluated;
//   - each chunk runs from an empty KV cache, its first token replaced by BOS when the model adds
//     BOS (so every chunk starts as a text does);
//   - only the second half of each chunk is scored: the logits after chunk positions
//     first = n_ctx/2 .. n_ctx-2 predict the tokens at positions first+1 .. n_ctx-1, i.e.
//     n_ctx - n_ctx/2 - 1 tokens per chunk, each seen with at least n_ctx/2 tokens of context;
//   - a scored token's negative log-likelihood is -log_softmax(logits)[token], in double;
//     perplexity = exp(mean NLL) over every scored token so far, and its uncertainty is
//     llama-perplexity's: ppl * sqrt((mean(NLL^2) - mean(NLL)^2) / (count - 1)).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/logit_math.hpp"

namespace apr::eval {

// --- the arithmetic of one row of logits -------------------------------------------------------

// log_sum_exp, kl_divergence and argmax are common/logit_math.hpp's.
using apr::argmax;
using apr::kl_divergence;
using apr::log_sum_exp;

// out[i] = x_i - log_sum_exp(x): the row's log-probabilities, in double. out.size() must equal
// logits.size().
void log_softmax(std::span<const float> logits, std::span<double> out);

// -log P(token) = log_sum_exp(x) - x[token], with the row's log_sum_exp given.
double token_nll(std::span<const float> logits, double lse, int32_t token);

// Running sums of negative log-likelihoods, and the figures llama-perplexity prints from them.
struct NllStats {
  double sum = 0, sum_sq = 0;
  uint64_t count = 0;

  void add(double nll) {
    sum += nll;
    sum_sq += nll * nll;
    ++count;
  }
  double mean() const { return count ? sum / double(count) : 0.0; }
  double perplexity() const;
  // ppl * sqrt(var(NLL) / (count - 1)); 0 with fewer than two values or a variance <= 0.
  double perplexity_uncertainty() const;
};

// --- chunks ------------------------------------------------------------------------------------

// Where the scored rows of an n_ctx-token chunk lie.
struct ChunkLayout {
  uint32_t n_ctx = 0;
  // The first logit row that is scored (it predicts the token at position first() + 1).
  uint32_t first() const { return n_ctx / 2; }
  // Scored tokens per chunk: positions first()+1 .. n_ctx-1.
  uint32_t scored() const { return n_ctx - n_ctx / 2 - 1; }
};

// The smallest chunk apr evaluates: 4 tokens, two of context and one scored.
constexpr uint32_t kMinChunk = 4;

// Whole chunks of n_ctx tokens in n_tokens, at most max_chunks of them (max_chunks < 0: all).
uint32_t count_chunks(uint64_t n_tokens, uint32_t n_ctx, int64_t max_chunks);

// The tokens chunk `chunk` is evaluated on: tokens[chunk*n_ctx .. (chunk+1)*n_ctx), the first
// one replaced by `bos` when bos >= 0. Throws apr::Error when the chunk lies beyond the tokens.
std::vector<int32_t> chunk_input(std::span<const int32_t> tokens, uint32_t n_ctx, uint32_t chunk,
                                 int32_t bos);

// --- evaluation --------------------------------------------------------------------------------

// Where logits come from: a model on one backend, behind a KV cache (SessionLogits below), or a
// stand-in in tests.
class LogitsSource {
 public:
  virtual ~LogitsSource() = default;
  virtual std::string name() const = 0;  // for messages: the backend's name
  virtual uint32_t n_vocab() const = 0;
  // The most tokens forward_rows() takes at once (>= 1).
  virtual uint32_t max_rows() const = 0;
  // Empties the KV cache: the next token is at position 0.
  virtual void reset() = 0;
  // Appends `tokens` to the cache; their logits are not needed.
  virtual void prefill(std::span<const int32_t> tokens) = 0;
  // Appends `tokens` (at most max_rows()) to the cache and returns the logits that follow each
  // of them, row by row (tokens.size() x n_vocab), valid until the next call on this source.
  virtual std::span<const float> forward_rows(std::span<const int32_t> tokens) = 0;
};

struct EvalOptions {
  uint32_t n_ctx = 512;     // tokens per chunk (llama-perplexity's default)
  int64_t max_chunks = -1;  // < 0: every whole chunk
  int32_t bos = -1;         // the token that replaces each chunk's first; < 0: none
  // With a second source: how many of the worst positions to keep (those with the largest KL;
  // a position where the two agree exactly, KL 0, is never among them).
  size_t n_worst = 5;
};

// A scored position where B's distribution lies far from A's.
struct WorstPosition {
  uint32_t chunk = 0;            // 0-based
  uint32_t position = 0;         // within the chunk, of the predicted token (first()+1 .. n_ctx-1)
  int32_t token = 0;             // the predicted (actual next) token
  double kl = 0;                 // KL(P_A || P_B) of the distributions that predict it
  int32_t top_a = 0, top_b = 0;  // each side's likeliest token there
};

struct EvalResult {
  uint32_t n_ctx = 0, n_chunks = 0;
  uint64_t n_tokens = 0;  // of the whole text
  NllStats a;
  // With a second source:
  std::optional<NllStats> b;
  double kl_sum = 0, kl_max = 0;
  uint64_t top1_agree = 0;
  std::vector<WorstPosition> worst;  // largest KL first; only KL > 0

  uint64_t n_scored() const { return a.count; }
  double kl_mean() const { return a.count ? kl_sum / double(a.count) : 0.0; }
  double top1_agreement() const { return a.count ? double(top1_agree) / double(a.count) : 0.0; }
};

// What on_chunk is told after each chunk.
struct ChunkReport {
  uint32_t chunk = 0;              // 0-based
  double kl_mean = 0, kl_max = 0;  // over this chunk's scored positions (with B)
  double top1_agreement = 0;       // over this chunk's scored positions (with B)
};

// Evaluates the chunks of `tokens` on `a` and, when given, on `b` (which must have a's vocabulary
// size), the two interleaved in pieces of at most min(max_rows) rows so that only one piece of
// logits per source is held at a time. on_chunk (may be empty) is called after each chunk with
// the running result. Throws apr::Error when there is not one whole chunk, when the sources'
// vocabularies differ, or when a source gives a non-finite logit row (naming source, chunk and
// position).
EvalResult evaluate(
    std::span<const int32_t> tokens, const EvalOptions& options, LogitsSource& a,
    LogitsSource* b = nullptr,
    const std::function<void(const ChunkReport&, const EvalResult&)>& on_chunk = {});

}  // namespace apr::eval
