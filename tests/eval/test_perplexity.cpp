// SPDX-License-Identifier: MIT
// core/eval against independent computations: log-softmax, NLL and KL divergence written out
// directly in long double (no max shift, no shared helper), KL in closed form on distributions
// built by hand, and the chunking of llama-perplexity (which rows are scored, BOS replacement, a
// fresh cache per chunk) observed through a stand-in LogitsSource that records every call.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "common/error.hpp"
#include "eval/perplexity.hpp"

using namespace apr::eval;

namespace {

// --- the oracle: straight from the definitions, in long double -----------------------------------

long double ref_lse(const std::vector<float>& x) {
  long double s = 0;
  for (float v : x) s += std::exp((long double)v);  // no shift: the test logits are small
  return std::log(s);
}

long double ref_kl(const std::vector<float>& a, const std::vector<float>& b) {
  const long double za = ref_lse(a), zb = ref_lse(b);
  long double kl = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const long double p = std::exp((long double)a[i] - za);
    const long double q = std::exp((long double)b[i] - zb);
    kl += p * std::log(p / q);
  }
  return kl;
}

std::vector<float> random_logits(std::mt19937& rng, size_t n, float spread) {
  std::uniform_real_distribution<float> d(-spread, spread);
  std::vector<float> x(n);
  for (float& v : x) {
    v = d(rng);
    if (v == 0) v = 0.5f;  // non-zero logits
  }
  return x;
}

// A model stand-in: the logits after a token depend on the token and on its position since the
// last reset, so a missing reset, a wrong position or a wrong input token changes the figures.
// Records what it was fed.
class FakeSource : public LogitsSource {
 public:
  using Fill = std::function<void(uint32_t pos, int32_t token, float* row)>;

  FakeSource(uint32_t n_vocab, uint32_t max_rows, Fill fill)
      : n_vocab_(n_vocab), max_rows_(max_rows), fill_(std::move(fill)) {}

  static void default_fill(uint32_t pos, int32_t token, float* row, uint32_t n_vocab) {
    for (uint32_t v = 0; v < n_vocab; ++v)
      row[v] = float(3.0 * std::sin(0.37 * v + 0.11 * token + 0.05 * pos) + 0.01 * (v % 7));
  }

  std::string name() const override { return "fake"; }
  uint32_t n_vocab() const override { return n_vocab_; }
  uint32_t max_rows() const override { return max_rows_; }
  void reset() override {
    fed.emplace_back();
    prefill_sizes.push_back(0);
    pos_ = 0;
  }
  void prefill(std::span<const int32_t> tokens) override {
    REQUIRE(!fed.empty());
    fed.back().insert(fed.back().end(), tokens.begin(), tokens.end());
    prefill_sizes.back() += uint32_t(tokens.size());
    pos_ += uint32_t(tokens.size());
  }
  std::span<const float> forward_rows(std::span<const int32_t> tokens) override {
    REQUIRE(!fed.empty());
    REQUIRE(tokens.size() <= max_rows_);
    pieces.push_back(uint32_t(tokens.size()));
    rows_.assign(tokens.size() * n_vocab_, 0.0f);
    for (size_t k = 0; k < tokens.size(); ++k) {
      fill_(pos_, tokens[k], rows_.data() + k * n_vocab_);
      fed.back().push_back(tokens[k]);
      ++pos_;
    }
    return rows_;
  }

  std::vector<std::vector<int32_t>> fed;  // per reset: every token fed, in order
  std::vector<uint32_t> prefill_sizes;    // per reset
  std::vector<uint32_t> pieces;           // sizes of forward_rows calls

 private:
  uint32_t n_vocab_, max_rows_;
  Fill fill_;
  uint32_t pos_ = 0;
  std::vector<float> rows_;
};

FakeSource::Fill fill_for(uint32_t n_vocab) {
  return [n_vocab](uint32_t pos, int32_t token, float* row) {
    FakeSource::default_fill(pos, token, row, n_vocab);
  };
}

std::vector<float> fake_row(uint32_t n_vocab, uint32_t pos, int32_t token) {
  std::vector<float> row(n_vocab);
  FakeSource::default_fill(pos, token, row.data(), n_vocab);
  return row;
}

std::vector<int32_t> text_tokens(size_t n, uint32_t n_vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> d(2, int32_t(n_vocab) - 1);
  std::vector<int32_t> t(n);
  for (auto& v : t) v = d(rng);
  return t;
}

}  // namespace

TEST_CASE("log_sum_exp and log_softmax equal the direct formula in long double", "[eval]") {
  std::mt19937 rng(7);
  for (size_t n : {1u, 2u, 17u, 1000u, 49152u}) {
    const auto x = random_logits(rng, n, 8.0f);
    const long double want = ref_lse(x);
    CHECK(std::abs((long double)log_sum_exp(x) - want) < 1e-12L * std::max(1.0L, std::abs(want)));
    std::vector<double> out(n);
    log_softmax(x, out);
    long double total = 0;
    for (size_t i = 0; i < n; ++i) {
      CHECK(std::abs((long double)out[i] - ((long double)x[i] - want)) < 1e-11L);
      total += std::exp((long double)out[i]);
    }
    CHECK(std::abs(total - 1.0L) < 1e-12L);
  }
  // Large logits, where exp without a shift would overflow float and double.
  const std::vector<float> big = {1000.0f, 999.0f, 998.0f};
  CHECK(log_sum_exp(big) == Approx(1000.0 + std::log(1.0 + std::exp(-1.0) + std::exp(-2.0))));
  std::vector<double> wrong(2);
  CHECK_THROWS_AS(log_softmax(big, wrong), apr::Error);
}

TEST_CASE("log_sum_exp is not finite for NaN or +inf logits", "[eval]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(std::isnan(log_sum_exp(std::vector<float>{nan, 1.0f, 2.0f})));
  CHECK(std::isnan(log_sum_exp(std::vector<float>{1.0f, nan})));
  CHECK(!std::isfinite(log_sum_exp(std::vector<float>{1.0f, inf})));
  // A -inf logit is a token of probability 0, which is allowed.
  CHECK(log_sum_exp(std::vector<float>{-inf, 0.0f}) == Approx(0.0));
}

TEST_CASE("token_nll is -log p(token)", "[eval]") {
  std::mt19937 rng(11);
  const auto x = random_logits(rng, 300, 5.0f);
  const double lse = log_sum_exp(x);
  const long double z = ref_lse(x);
  for (int32_t t : {0, 1, 150, 299}) {
    const long double p = std::exp((long double)x[size_t(t)]) / std::exp(z);
    CHECK(std::abs((long double)token_nll(x, lse, t) + std::log(p)) < 1e-11L);
  }
}

TEST_CASE("KL divergence equals the direct formula in long double", "[eval]") {
  std::mt19937 rng(3);
  for (size_t n : {2u, 64u, 5000u, 49152u}) {
    for (float spread : {0.5f, 4.0f, 10.0f}) {
      const auto a = random_logits(rng, n, spread);
      auto b = a;
      std::normal_distribution<float> noise(0.0f, 0.3f);
      for (float& v : b) v += noise(rng);
      const long double want = ref_kl(a, b);
      const double got = kl_divergence(a, b);
      INFO("n " << n << " spread " << spread << " want " << double(want) << " got " << got);
      CHECK(want > 0);
      CHECK(std::abs((long double)got - want) < 1e-12L + 1e-9L * want);
      // The overload with given log-sum-exps is the same computation.
      CHECK(kl_divergence(a, log_sum_exp(a), b, log_sum_exp(b)) == got);
    }
  }
}

TEST_CASE("KL divergence in closed form on distributions built by hand", "[eval]") {
  // P = (1/2, 1/4, 1/4), Q = (1/4, 1/4, 1/2): KL(P||Q) = 1/2 ln 2 + 0 + 1/4 ln(1/2) = ln(2)/4,
  // KL(Q||P) = 1/4 ln(1/2) + 0 + 1/2 ln 2 = ln(2)/4 as well. Logits are log-probabilities plus
  // any constant, which softmax removes.
  const std::vector<float> p = {std::log(0.5f) + 3.0f, std::log(0.25f) + 3.0f,
                                std::log(0.25f) + 3.0f};
  const std::vector<float> q = {std::log(0.25f) - 7.0f, std::log(0.25f) - 7.0f,
                                std::log(0.5f) - 7.0f};
  CHECK(kl_divergence(p, q) == Approx(std::log(2.0) / 4).epsilon(1e-6));
  CHECK(kl_divergence(q, p) == Approx(std::log(2.0) / 4).epsilon(1e-6));

  // Uniform P over n against Q that gives token 0 weight w and the rest (1-w)/(n-1):
  // KL(P||Q) = -ln n - (1/n) ln w - ((n-1)/n) ln((1-w)/(n-1)).
  const int n = 1000;
  const double w = 0.9;
  std::vector<float> uniform(n, 1.25f), skewed(n, float(std::log((1 - w) / (n - 1))));
  skewed[0] = float(std::log(w));
  const double want =
      -std::log(double(n)) - std::log(w) / n - (n - 1.0) / n * std::log((1 - w) / (n - 1));
  CHECK(kl_divergence(uniform, skewed) == Approx(want).epsilon(1e-6));

  // Identical rows: exactly 0 (never a rounding residue below zero).
  std::mt19937 rng(5);
  const auto x = random_logits(rng, 49152, 12.0f);
  CHECK(kl_divergence(x, x) == 0.0);
}

TEST_CASE("KL divergence: zero-probability tokens", "[eval]") {
  const float inf = std::numeric_limits<float>::infinity();
  // P gives token 2 probability 0: its term counts 0 whatever Q says.
  const std::vector<float> p = {0.0f, 0.0f, -inf};
  const std::vector<float> q = {0.0f, 0.0f, 0.0f};
  // P = (1/2, 1/2, 0), Q = (1/3, 1/3, 1/3): KL = ln(3/2).
  CHECK(kl_divergence(p, q) == Approx(std::log(1.5)));
  // Q gives probability 0 where P does not: infinite.
  CHECK(std::isinf(kl_divergence(q, p)));
  CHECK_THROWS_AS(kl_divergence(p, std::vector<float>{0.0f}), apr::Error);
}

TEST_CASE("argmax takes the first of equal maxima", "[eval]") {
  CHECK(argmax(std::vector<float>{1, 3, 3, 2}) == 1);
  CHECK(argmax(std::vector<float>{5}) == 0);
  CHECK(argmax(std::vector<float>{-1, -2, -0.5f}) == 2);
}

TEST_CASE("NllStats: perplexity and llama-perplexity's uncertainty", "[eval]") {
  NllStats s;
  CHECK(s.perplexity() == 1.0);
  CHECK(s.perplexity_uncertainty() == 0.0);
  for (double v : {1.0, 2.0, 3.0}) s.add(v);
  CHECK(s.count == 3);
  CHECK(s.mean() == Approx(2.0));
  CHECK(s.perplexity() == Approx(std::exp(2.0)));
  // var = E[v^2] - E[v]^2 = 14/3 - 4 = 2/3; uncertainty = ppl * sqrt(var / (count - 1)).
  CHECK(s.perplexity_uncertainty() == Approx(std::exp(2.0) * std::sqrt((2.0 / 3.0) / 2.0)));
  NllStats same;
  for (int i = 0; i < 10; ++i) same.add(0.7);
  CHECK(same.perplexity() == Approx(std::exp(0.7)));
  CHECK(same.perplexity_uncertainty() == 0.0);
}

TEST_CASE("chunks: whole chunks only, BOS in front of each", "[eval]") {
  const ChunkLayout l{512};
  CHECK(l.first() == 256);
  CHECK(l.scored() == 255);
  CHECK(ChunkLayout{128}.scored() == 63);
  CHECK(ChunkLayout{7}.first() == 3);
  CHECK(ChunkLayout{7}.scored() == 3);  // positions 4, 5, 6
  CHECK(ChunkLayout{kMinChunk}.scored() == 1);

  CHECK(count_chunks(1000, 128, -1) == 7);
  CHECK(count_chunks(1000, 128, 3) == 3);
  CHECK(count_chunks(1000, 128, 100) == 7);
  CHECK(count_chunks(127, 128, -1) == 0);
  CHECK(count_chunks(128, 128, -1) == 1);

  std::vector<int32_t> t(40);
  for (int i = 0; i < 40; ++i) t[size_t(i)] = 100 + i;
  const auto c0 = chunk_input(t, 16, 0, 1);
  const auto c1 = chunk_input(t, 16, 1, 1);
  REQUIRE(c0.size() == 16);
  CHECK(c0[0] == 1);
  CHECK(c0[1] == 101);
  CHECK(c1[0] == 1);  // token 116 replaced by BOS
  CHECK(c1[1] == 117);
  CHECK(c1[15] == 131);
  CHECK(chunk_input(t, 16, 1, -1)[0] == 116);             // no BOS: left as it is
  CHECK_THROWS_AS(chunk_input(t, 16, 2, 1), apr::Error);  // 32 + 16 > 40
}

TEST_CASE("evaluate scores the second half of each chunk from a fresh cache", "[eval]") {
  const uint32_t V = 50, n_ctx = 16;
  const int32_t bos = 1;
  auto tokens = text_tokens(3 * n_ctx + 5, V, 42);  // 3 whole chunks and 5 left over
  tokens[0] = bos;
  FakeSource a(V, 4, fill_for(V));
  EvalOptions o;
  o.n_ctx = n_ctx;
  o.bos = bos;
  std::vector<uint32_t> seen_chunks;
  const EvalResult r =
      evaluate(tokens, o, a, nullptr, [&](const ChunkReport& c, const EvalResult& so_far) {
        seen_chunks.push_back(c.chunk);
        CHECK(so_far.a.count == (c.chunk + 1) * ChunkLayout{n_ctx}.scored());
      });
  CHECK(seen_chunks == std::vector<uint32_t>{0, 1, 2});
  CHECK(r.n_chunks == 3);
  CHECK(r.n_tokens == tokens.size());
  CHECK(r.n_scored() == 3 * 7);  // positions 9..15 of each chunk
  CHECK(!r.b);

  // What was fed: per chunk a reset, the first half as prefill, then positions 8..14 (the last
  // token of a chunk predicts nothing inside it and is never fed), BOS in front.
  REQUIRE(a.fed.size() == 3);
  for (uint32_t c = 0; c < 3; ++c) {
    CHECK(a.prefill_sizes[c] == 8);
    std::vector<int32_t> want(tokens.begin() + c * n_ctx, tokens.begin() + c * n_ctx + 15);
    want[0] = bos;
    CHECK(a.fed[c] == want);
  }
  // Pieces of at most max_rows (4): 7 scored rows = 4 + 3 per chunk.
  CHECK(a.pieces == std::vector<uint32_t>{4, 3, 4, 3, 4, 3});

  // The NLL sum from the definition: the row after chunk position j-1 scores token j.
  long double sum = 0, sum_sq = 0;
  for (uint32_t c = 0; c < 3; ++c) {
    for (uint32_t j = 9; j < n_ctx; ++j) {
      const int32_t prev = tokens[c * n_ctx + j - 1];
      const auto row = fake_row(V, j - 1, prev);
      const long double nll = ref_lse(row) - row[size_t(tokens[c * n_ctx + j])];
      sum += nll;
      sum_sq += nll * nll;
    }
  }
  CHECK(std::abs((long double)r.a.sum - sum) < 1e-10L * sum);
  CHECK(std::abs((long double)r.a.sum_sq - sum_sq) < 1e-10L * sum_sq);
  CHECK(r.a.perplexity() == Approx(std::exp(double(sum) / 21)).epsilon(1e-12));
}

TEST_CASE("evaluate: the piece size and max_chunks do not change the figures", "[eval]") {
  const uint32_t V = 37, n_ctx = 20;
  const auto tokens = text_tokens(5 * n_ctx, V, 9);
  EvalOptions o;
  o.n_ctx = n_ctx;
  FakeSource one(V, 1, fill_for(V)), many(V, 1000, fill_for(V));
  const EvalResult r1 = evaluate(tokens, o, one);
  const EvalResult r2 = evaluate(tokens, o, many);
  CHECK(r1.a.sum == r2.a.sum);
  CHECK(r1.n_scored() == 5 * 9);
  CHECK(many.pieces == std::vector<uint32_t>(5, 9));
  // Without BOS the chunk's own first token stays.
  CHECK(one.fed[2][0] == tokens[2 * n_ctx]);

  o.max_chunks = 2;
  FakeSource two(V, 3, fill_for(V));
  const EvalResult r3 = evaluate(tokens, o, two);
  CHECK(r3.n_chunks == 2);
  CHECK(r3.n_scored() == 18);
  CHECK(two.fed.size() == 2);
}

TEST_CASE("evaluate with two sources: KL, top-1 agreement and the worst positions", "[eval]") {
  const uint32_t V = 40, n_ctx = 12;
  const auto tokens = text_tokens(3 * n_ctx, V, 77);
  EvalOptions o;
  o.n_ctx = n_ctx;
  o.n_worst = 2;

  SECTION("identical sources agree exactly") {
    FakeSource a(V, 4, fill_for(V)), b(V, 3, fill_for(V));
    std::vector<ChunkReport> reports;
    const EvalResult r = evaluate(
        tokens, o, a, &b, [&](const ChunkReport& c, const EvalResult&) { reports.push_back(c); });
    REQUIRE(r.b);
    CHECK(r.b->sum == r.a.sum);
    CHECK(r.kl_sum == 0.0);
    CHECK(r.kl_max == 0.0);
    CHECK(r.kl_mean() == 0.0);
    CHECK(r.top1_agreement() == 1.0);
    CHECK(r.worst.empty());
    REQUIRE(reports.size() == 3);
    CHECK(reports[1].top1_agreement == 1.0);
    // Both were driven in pieces of the smaller max_rows.
    CHECK(a.pieces == b.pieces);
    CHECK(a.pieces == std::vector<uint32_t>{3, 2, 3, 2, 3, 2});
  }

  SECTION("a source that differs at two positions") {
    // B flips the row after position 7 (predicting position 8) into another distribution in
    // chunk 2 only (its row after token tokens[2*12+7]), and perturbs the row after position 9 a
    // little everywhere.
    const int32_t tok7 = tokens[2 * n_ctx + 7];
    auto b_fill = [&](uint32_t pos, int32_t token, float* row) {
      FakeSource::default_fill(pos, token, row, V);
      if (pos == 7 && token == tok7)
        for (uint32_t v = 0; v < V; ++v) row[v] = -row[v];
      if (pos == 9) row[0] += 0.01f;
    };
    FakeSource a(V, 100, fill_for(V)), b(V, 100, b_fill);
    const EvalResult r = evaluate(tokens, o, a, &b);
    REQUIRE(r.b);
    CHECK(r.n_scored() == 3 * 5);

    // Expected, from the definitions.
    long double kl_sum = 0;
    long double kl_flip = 0;
    uint64_t agree = 0;
    for (uint32_t c = 0; c < 3; ++c)
      for (uint32_t j = 7; j < n_ctx; ++j) {  // rows after positions 6..10
        const int32_t prev = tokens[c * n_ctx + j - 1];
        const auto ra = fake_row(V, j - 1, prev);
        std::vector<float> rb(V);
        b_fill(j - 1, prev, rb.data());
        const long double kl = ref_kl(ra, rb);
        kl_sum += kl;
        if (c == 2 && j == 8) kl_flip = kl;
        agree += argmax(ra) == argmax(rb);
      }
    CHECK(std::abs((long double)r.kl_sum - kl_sum) < 1e-9L * kl_sum);
    CHECK(r.kl_max == Approx(double(kl_flip)).epsilon(1e-9));
    CHECK(r.top1_agree == agree);
    CHECK(r.top1_agreement() < 1.0);  // the flipped row ranks another token first
    REQUIRE(r.worst.size() == 2);
    CHECK(r.worst[0].chunk == 2);
    CHECK(r.worst[0].position == 8);
    CHECK(r.worst[0].token == tokens[2 * n_ctx + 8]);
    CHECK(r.worst[0].kl == r.kl_max);
    CHECK(r.worst[0].top_a == int32_t(argmax(fake_row(V, 7, tok7))));
    CHECK(r.worst[0].top_a != r.worst[0].top_b);
    CHECK(r.worst[1].kl <= r.worst[0].kl);
    CHECK(r.worst[1].position == 10);  // the small perturbation after position 9
  }
}

TEST_CASE("evaluate refuses what it cannot score", "[eval]") {
  const uint32_t V = 30;
  const auto tokens = text_tokens(50, V, 1);
  FakeSource a(V, 8, fill_for(V));
  EvalOptions o;
  o.n_ctx = 64;
  try {
    evaluate(tokens, o, a);
    FAIL("no error");
  } catch (const apr::Error& e) {
    CHECK(std::string(e.what()).find("has 50 tokens") != std::string::npos);
    CHECK(std::string(e.what()).find("64") != std::string::npos);
  }
  o.n_ctx = 3;
  CHECK_THROWS_AS(evaluate(tokens, o, a), apr::Error);

  o.n_ctx = 10;
  FakeSource other(V + 1, 8, fill_for(V + 1));
  CHECK_THROWS_AS(evaluate(tokens, o, a, &other), apr::Error);

  auto bad = tokens;
  bad[3] = int32_t(V);
  CHECK_THROWS_AS(evaluate(bad, o, a), apr::Error);

  // A NaN logit after chunk 2's position 6 is named.
  auto nan_fill = [&](uint32_t pos, int32_t token, float* row) {
    FakeSource::default_fill(pos, token, row, V);
    if (pos == 6 && token == tokens[10 + 6]) row[3] = std::numeric_limits<float>::quiet_NaN();
  };
  FakeSource broken(V, 8, nan_fill);
  try {
    evaluate(tokens, o, a, &broken);
    FAIL("no error");
  } catch (const apr::Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("non-finite") != std::string::npos);
    CHECK(std::string(e.what()).find("chunk 2 after position 6") != std::string::npos);
  }
}
