// SPDX-License-Identifier: MIT
#include "eval/perplexity.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.hpp"

namespace apr::eval {

void log_softmax(std::span<const float> logits, std::span<double> out) {
  if (out.size() != logits.size()) throw Error("log_softmax: output size differs from input");
  const double lse = log_sum_exp(logits);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = double(logits[i]) - lse;
}

double token_nll(std::span<const float> logits, double lse, int32_t token) {
  return lse - double(logits[size_t(token)]);
}

double NllStats::perplexity() const {
  return std::exp(mean());
}

double NllStats::perplexity_uncertainty() const {
  if (count < 2) return 0.0;
  const double m = mean();
  const double var = sum_sq / double(count) - m * m;
  if (!(var > 0)) return 0.0;
  return perplexity() * std::sqrt(var / double(count - 1));
}

uint32_t count_chunks(uint64_t n_tokens, uint32_t n_ctx, int64_t max_chunks) {
  if (n_ctx == 0) return 0;
  uint64_t n = n_tokens / n_ctx;
  if (max_chunks >= 0) n = std::min<uint64_t>(n, uint64_t(max_chunks));
  return uint32_t(std::min<uint64_t>(n, std::numeric_limits<uint32_t>::max()));
}

std::vector<int32_t> chunk_input(std::span<const int32_t> tokens, uint32_t n_ctx, uint32_t chunk,
                                 int32_t bos) {
  const uint64_t start = uint64_t(chunk) * n_ctx;
  if (n_ctx == 0 || start + n_ctx > tokens.size())
    throw Error("chunk " + std::to_string(chunk + 1) + " of " + std::to_string(n_ctx) +
                " tokens lies beyond the " + std::to_string(tokens.size()) + " tokens of the text");
  std::vector<int32_t> in(tokens.begin() + ptrdiff_t(start),
                          tokens.begin() + ptrdiff_t(start + n_ctx));
  if (bos >= 0) in[0] = bos;
  return in;
}

namespace {

// The row's log_sum_exp, or apr::Error naming where a backend gave NaN or infinity.
double checked_lse(std::span<const float> row, const LogitsSource& source, uint32_t chunk,
                   uint32_t position) {
  const double lse = log_sum_exp(row);
  if (!std::isfinite(lse))
    throw Error("backend '" + source.name() + "' gave a non-finite logit (NaN or infinity) in " +
                "chunk " + std::to_string(chunk + 1) + " after position " +
                std::to_string(position));
  return lse;
}

void keep_worst(std::vector<WorstPosition>& worst, size_t n, const WorstPosition& w) {
  if (n == 0 || !(w.kl > 0)) return;
  // Strictly larger only, so that of equal KLs the earliest position stays.
  if (worst.size() == n && !(w.kl > worst.back().kl)) return;
  auto at =
      std::upper_bound(worst.begin(), worst.end(), w,
                       [](const WorstPosition& x, const WorstPosition& y) { return x.kl > y.kl; });
  worst.insert(at, w);
  if (worst.size() > n) worst.pop_back();
}

}  // namespace

EvalResult evaluate(std::span<const int32_t> tokens, const EvalOptions& options, LogitsSource& a,
                    LogitsSource* b,
                    const std::function<void(const ChunkReport&, const EvalResult&)>& on_chunk) {
  const ChunkLayout layout{options.n_ctx};
  if (options.n_ctx < kMinChunk)
    throw Error("a chunk needs at least " + std::to_string(kMinChunk) + " tokens, not " +
                std::to_string(options.n_ctx));
  const uint32_t n_chunks = count_chunks(tokens.size(), options.n_ctx, options.max_chunks);
  if (n_chunks == 0)
    throw Error("the text has " + std::to_string(tokens.size()) + " tokens; one chunk needs " +
                std::to_string(options.n_ctx));
  const uint32_t n_vocab = a.n_vocab();
  if (b && b->n_vocab() != n_vocab)
    throw Error("the two backends give logits over different vocabularies (" +
                std::to_string(n_vocab) + " and " + std::to_string(b->n_vocab()) + ")");
  for (int32_t t : tokens)
    if (t < 0 || uint32_t(t) >= n_vocab)
      throw Error("token id " + std::to_string(t) + " is outside the vocabulary of " +
                  std::to_string(n_vocab));
  const uint32_t piece =
      std::max<uint32_t>(1, b ? std::min(a.max_rows(), b->max_rows()) : a.max_rows());

  EvalResult r;
  r.n_ctx = options.n_ctx;
  r.n_chunks = n_chunks;
  r.n_tokens = tokens.size();
  if (b) r.b.emplace();
  const uint32_t first = layout.first();
  const uint32_t end = options.n_ctx - 1;  // the last row's logits predict beyond the chunk

  for (uint32_t c = 0; c < n_chunks; ++c) {
    const std::vector<int32_t> input = chunk_input(tokens, options.n_ctx, c, options.bos);
    const std::span<const int32_t> in(input);
    // The unscored first half only fills the KV cache.
    a.reset();
    a.prefill(in.first(first));
    if (b) {
      b->reset();
      b->prefill(in.first(first));
    }
    ChunkReport report;
    report.chunk = c;
    double chunk_kl = 0;
    uint64_t chunk_agree = 0;
    for (uint32_t row = first; row < end;) {
      const uint32_t n = std::min(piece, end - row);
      const std::span<const float> la = a.forward_rows(in.subspan(row, n));
      std::span<const float> lb;
      if (b) lb = b->forward_rows(in.subspan(row, n));
      if (la.size() != size_t(n) * n_vocab || (b && lb.size() != size_t(n) * n_vocab))
        throw Error("a backend returned the wrong number of logit rows");
      for (uint32_t k = 0; k < n; ++k) {
        const uint32_t position = row + k + 1;  // of the predicted token, within the chunk
        const int32_t token = input[position];  // position >= 1: never the BOS stand-in
        const auto ra = la.subspan(size_t(k) * n_vocab, n_vocab);
        const double lse_a = checked_lse(ra, a, c, row + k);
        r.a.add(token_nll(ra, lse_a, token));
        if (!b) continue;
        const auto rb = lb.subspan(size_t(k) * n_vocab, n_vocab);
        const double lse_b = checked_lse(rb, *b, c, row + k);
        r.b->add(token_nll(rb, lse_b, token));
        const double kl = kl_divergence(ra, lse_a, rb, lse_b);
        const int32_t top_a = argmax(ra), top_b = argmax(rb);
        r.kl_sum += kl;
        chunk_kl += kl;
        r.kl_max = std::max(r.kl_max, kl);
        report.kl_max = std::max(report.kl_max, kl);
        if (top_a == top_b) {
          ++r.top1_agree;
          ++chunk_agree;
        }
        keep_worst(r.worst, options.n_worst, {c, position, token, kl, top_a, top_b});
      }
      row += n;
    }
    if (b) {
      report.kl_mean = chunk_kl / double(layout.scored());
      report.top1_agreement = double(chunk_agree) / double(layout.scored());
    }
    if (on_chunk) on_chunk(report, r);
  }
  return r;
}

}  // namespace apr::eval
