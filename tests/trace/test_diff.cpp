// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "test_support.hpp"
#include "trace_compare/html_report.hpp"
#include "trace_compare/stage_diff.hpp"
#include "trace_compare/trace_compare.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/manifest.hpp"

using namespace apr;
using namespace apr::trace;
using apr::trace::testing::random_values;
using apr::trace::testing::ScratchDir;

TEST_CASE("diff metrics match hand-computed values", "[trace][diff]") {
  const std::vector<float> a = {1, 2, 3, 4};
  const std::vector<float> b = {1, 2, 3.5f, 3};
  const auto m = compare_values(a, b, 2);
  CHECK(m.count == 4);
  CHECK(m.max_abs_diff == 1.0);
  CHECK(m.max_abs_diff_index == 3);
  // deltas 0, 0, 0.5, 1: rms = sqrt(1.25 / 4)
  CHECK(m.rms_diff == Approx(std::sqrt(0.3125)).epsilon(1e-15));
  // a.b = 1 + 4 + 10.5 + 12 = 27.5; |a|^2 = 30; |b|^2 = 1 + 4 + 12.25 + 9 = 26.25
  CHECK(m.cosine_sim == Approx(27.5 / std::sqrt(30.0 * 26.25)).epsilon(1e-15));
  REQUIRE(m.top.size() == 2);
  CHECK(m.top[0].index == 3);
  CHECK(m.top[0].a == 4.0f);
  CHECK(m.top[0].b == 3.0f);
  CHECK(m.top[0].abs_diff == 1.0);
  CHECK(m.top[1].index == 2);
  CHECK(m.top[1].abs_diff == 0.5);
  // sum (a-b)^2 = 1.25 over sum a^2 = 30
  CHECK(m.nmse == Approx(1.25 / 30.0).epsilon(1e-15));
  CHECK(m.rel_l2 == Approx(std::sqrt(1.25 / 30.0)).epsilon(1e-15));
  CHECK_FALSE(m.logits);
  CHECK_FALSE(m.passes(Thresholds{0.999, 1.0}));  // cosine 0.9796 fails
  CHECK_FALSE(m.passes(Thresholds{0.9, 1e-5}));   // NMSE 0.0417 fails
  CHECK(m.passes(Thresholds{0.9, 0.05}));
  CHECK(m.cosine_fails(Thresholds{0.999, 1.0}));
  CHECK_FALSE(m.nmse_fails(Thresholds{0.999, 1.0}));
  CHECK(m.nmse_fails(Thresholds{0.9, 0.04}));

  CHECK(compare_values(a, a, 10).cosine_sim == Approx(1.0).epsilon(1e-15));
  CHECK(compare_values(a, a, 10).max_abs_diff == 0.0);
  CHECK(compare_values(a, a, 10).nmse == 0.0);
  CHECK(compare_values(a, a, 10).rel_l2 == 0.0);
  CHECK(compare_values(a, a, 10).top.size() == 4);
  CHECK(compare_values(a, a, 10).passes(Thresholds{1.0, 0.0}));  // identical passes the strictest
}

TEST_CASE("diff metrics agree with a long double reference on random data", "[trace][diff]") {
  const auto a = random_values(4097, 11, 3.0f);
  auto b = a;
  const auto noise = random_values(b.size(), 12, 1e-3f);
  for (size_t i = 0; i < b.size(); ++i) b[i] += noise[i];
  const auto m = compare_values(a, b, 5);
  long double dot = 0, na = 0, nb = 0, sq = 0, mx = 0;
  size_t imx = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const long double x = a[i], y = b[i], d = std::fabs(x - y);
    dot += x * y;
    na += x * x;
    nb += y * y;
    sq += d * d;
    if (d > mx) mx = d, imx = i;
  }
  CHECK(m.cosine_sim == Approx(double(dot / std::sqrt(na * nb))).epsilon(1e-12));
  CHECK(m.rms_diff == Approx(double(std::sqrt(sq / a.size()))).epsilon(1e-12));
  CHECK(m.max_abs_diff == Approx(double(mx)).epsilon(1e-15));
  CHECK(m.max_abs_diff_index == imx);
  CHECK(m.nmse == Approx(double(sq / na)).epsilon(1e-12));
  CHECK(m.rel_l2 == Approx(double(std::sqrt(sq) / std::sqrt(na))).epsilon(1e-12));
  for (size_t k = 1; k < m.top.size(); ++k) CHECK(m.top[k - 1].abs_diff >= m.top[k].abs_diff);
  CHECK(m.top[0].index == imx);
}

TEST_CASE("nmse and rel_l2 take A as the reference and agree with long double", "[trace][diff]") {
  // Different scales and signs on both sides, many seeds: sum (a-b)^2 / sum a^2 exactly as
  // written, in long double, on the float values themselves.
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    const auto a = random_values(1000 + 37 * seed, seed, 0.01f * float(seed));
    const auto b = random_values(a.size(), seed + 1000, 0.02f);
    long double sq = 0, na = 0, nb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const long double d = (long double)a[i] - (long double)b[i];
      sq += d * d;
      na += (long double)a[i] * a[i];
      nb += (long double)b[i] * b[i];
    }
    const auto ab = compare_values(a, b, 0);
    const auto ba = compare_values(b, a, 0);
    CHECK(ab.nmse == Approx(double(sq / na)).epsilon(1e-12));
    CHECK(ba.nmse == Approx(double(sq / nb)).epsilon(1e-12));  // B as the reference
    CHECK(ab.rel_l2 == Approx(double(sqrtl(sq / na))).epsilon(1e-12));
  }
}

TEST_CASE("cosine is 0 when a norm is 0; count mismatch is an error", "[trace][diff]") {
  const std::vector<float> z = {0, -0.0f, 0};
  const std::vector<float> a = {1, 2, 3};
  CHECK(compare_values(z, a, 3).cosine_sim == 0.0);
  CHECK(compare_values(a, z, 3).cosine_sim == 0.0);
  CHECK(compare_values(z, z, 3).cosine_sim == 0.0);
  // NMSE: zero against zero is no error; a non-zero B against a zero A is an infinite one; a
  // zero B against a non-zero A is all error (1).
  CHECK(compare_values(z, z, 3).nmse == 0.0);
  CHECK(compare_values(z, z, 3).rel_l2 == 0.0);
  CHECK(std::isinf(compare_values(z, a, 3).nmse));
  CHECK(std::isinf(compare_values(z, a, 3).rel_l2));
  CHECK_FALSE(compare_values(z, a, 3).passes(Thresholds{-1.0, 1e300}));
  CHECK(compare_values(a, z, 3).nmse == 1.0);
  CHECK(compare_values(a, z, 3).rel_l2 == 1.0);
  // max_nmse = inf leaves NMSE out: only the cosine decides (as before --max-nmse existed).
  const Thresholds cosine_only{0.999, std::numeric_limits<double>::infinity()};
  CHECK_FALSE(compare_values(z, a, 3).nmse_fails(cosine_only));
  CHECK_THROWS_WITH(compare_values(a, std::vector<float>{1, 2}, 3),
                    Catch::Contains("element counts differ"));
}

TEST_CASE("NaNs are counted and a one-sided NaN diverges", "[trace][diff]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> a = {1, 2, 3, nan, 5};
  const std::vector<float> b = {1, 2, 3, nan, 5};
  auto m = compare_values(a, b, 3);
  CHECK(m.nan_a == 1);
  CHECK(m.nan_b == 1);
  CHECK(m.nonfinite_mismatch == 0);
  CHECK(m.nmse == 0.0);
  CHECK(m.passes(Thresholds{}));
  const std::vector<float> c = {1, nan, 3, 4, inf};
  m = compare_values(a, c, 3);
  CHECK(m.nan_a == 1);
  CHECK(m.nan_b == 1);
  CHECK(m.nonfinite_mismatch == 3);
  CHECK_FALSE(m.passes(Thresholds{0.0, 1e300}));
  CHECK(std::isfinite(m.cosine_sim));
  CHECK(std::isfinite(m.max_abs_diff));
  // Over the pairs finite on both sides (indices 0 and 2): identical, so NMSE 0.
  CHECK(m.nmse == 0.0);
  CHECK_THAT(failure_reasons(m, Thresholds{}), Catch::Equals("3 NaN/inf on one side only"));
  // A one-sided NaN in lm_head: that row is left out of top-1 and KL.
  const auto l = compare_logits(a, c, 0);
  CHECK(l.rows == 0);
  CHECK(l.top1_agree_fraction() == 1.0);
}

TEST_CASE("file diff checks layers and counts and writes apr-stage-diff-v1", "[trace][diff]") {
  ScratchDir dir("file-diff");
  write_aprt(dir.path() / "a.bin", 3, std::vector<float>{1, 2, 3, 4});
  write_aprt(dir.path() / "b.bin", 3, std::vector<float>{1, 2, 3.5f, 3});
  write_aprt(dir.path() / "c.bin", 4, std::vector<float>{1, 2, 3, 4});
  write_aprt(dir.path() / "d.bin", 3, std::vector<float>{1, 2, 3});
  CHECK_THROWS_WITH(compare_files(dir.path() / "a.bin", dir.path() / "c.bin", 10),
                    Catch::Contains("layer mismatch"));
  CHECK_THROWS_WITH(compare_files(dir.path() / "a.bin", dir.path() / "d.bin", 10),
                    Catch::Contains("element count mismatch"));
  const auto d = compare_files(dir.path() / "a.bin", dir.path() / "b.bin", 1);
  const auto j = nlohmann::json::parse(file_diff_json(d));
  CHECK(j["schema"] == "apr-stage-diff-v1");
  for (const char* key : {"path_a", "path_b", "layer", "dim_product", "max_abs_diff",
                          "max_abs_diff_index", "rms_diff", "cosine_sim", "top_diffs", "nmse",
                          "rel_l2", "nan_count_a", "nan_count_b", "nonfinite_mismatch"})
    CHECK(j.contains(key));
  CHECK(j["nmse"].get<double>() == Approx(1.25 / 30.0).epsilon(1e-15));
  CHECK(j["rel_l2"].get<double>() == Approx(std::sqrt(1.25 / 30.0)).epsilon(1e-15));
  CHECK_FALSE(j.contains("kl_div"));  // not logits
  CHECK_FALSE(j.contains("top1_agree"));
  CHECK(j["layer"] == 3);
  CHECK(j["dim_product"] == 4);
  CHECK(j["max_abs_diff_index"] == 3);
  REQUIRE(j["top_diffs"].size() == 1);
  CHECK(j["top_diffs"][0]["index"] == 3);
  CHECK(j["top_diffs"][0]["a"] == 4.0);
  CHECK(j["top_diffs"][0]["b"] == 3.0);
  CHECK(j["top_diffs"][0]["abs_diff"] == 1.0);
  const std::string text = file_diff_text(d, Thresholds{});
  CHECK_THAT(text, Catch::Contains("NMSE               0.0417") &&
                       Catch::Contains("relative L2        0.204") &&
                       Catch::Contains("DIVERGED: cosine 0.979") &&
                       Catch::Contains("< 0.999, NMSE 0.0417 > 1e-05"));
  CHECK_THAT(file_diff_text(d, Thresholds{0.9, 1e-5}),
             Catch::Contains("DIVERGED: NMSE 0.0417 > 1e-05 (cosine 0.979"));
  CHECK_THAT(file_diff_text(d, Thresholds{0.9, 0.05}),
             Catch::Contains("OK: cosine 0.979") && Catch::Contains(", NMSE 0.0417 <= 0.05"));

  // Logits: the whole file is one row; top-1 (index 3 on A, 2 on B: 3.5 > 3) and KL.
  const auto l = compare_files(dir.path() / "a.bin", dir.path() / "b.bin", 1, uint64_t(0));
  REQUIRE(l.metrics.logits);
  CHECK(l.metrics.logits->rows == 1);
  CHECK(l.metrics.logits->argmax_a == 3);
  CHECK(l.metrics.logits->argmax_b == 2);
  const auto lj = nlohmann::json::parse(file_diff_json(l));
  CHECK(lj["top1_agree"] == 0.0);
  CHECK(lj["logit_rows"] == 1);
  CHECK(lj["kl_div"].get<double>() > 0);
  CHECK_THAT(file_diff_text(l, Thresholds{}),
             Catch::Contains("top-1 (argmax)     differs: a 3, b 2") &&
                 Catch::Contains("KL(a||b)           "));
}

namespace {

// KL(softmax(a) || softmax(b)) of one row as the textbook writes it, in long double: p_i =
// e^{a_i} / sum e^{a_j} (shifted by the row's max so expl cannot overflow), then
// sum p_i ln(p_i / q_i).
long double reference_kl(const float* a, const float* b, size_t n) {
  long double ma = a[0], mb = b[0];
  for (size_t i = 0; i < n; ++i)
    ma = std::max<long double>(ma, a[i]), mb = std::max<long double>(mb, b[i]);
  long double za = 0, zb = 0;
  for (size_t i = 0; i < n; ++i) za += expl(a[i] - ma), zb += expl(b[i] - mb);
  long double kl = 0;
  for (size_t i = 0; i < n; ++i) {
    const long double p = expl(a[i] - ma) / za, q = expl(b[i] - mb) / zb;
    if (p > 0) kl += p * logl(p / q);
  }
  return kl;
}

size_t reference_argmax(const float* v, size_t n) {
  size_t best = 0;
  for (size_t i = 0; i < n; ++i)
    if (v[i] > v[best]) best = i;  // the first of equal maxima, as numpy's argmax
  return best;
}

}  // namespace

TEST_CASE("logit metrics: KL and top-1 against hand-written references", "[trace][diff]") {
  // Two logits: p = (1/3, 2/3) for a = (0, ln 2); q = (1/2, 1/2) for b = (0, 0).
  // KL = 1/3 ln(2/3) + 2/3 ln(4/3); argmax 1 against 0 (ties go to the first index).
  const double kl2 = std::log(2.0 / 3.0) / 3.0 + 2.0 * std::log(4.0 / 3.0) / 3.0;
  const float ln2 = float(std::log(2.0));
  const std::vector<float> a = {0.0f, ln2}, b = {0.0f, 0.0f};
  auto l = compare_logits(a, b, 0);
  CHECK(l.rows == 1);
  CHECK(l.row_length == 2);
  CHECK(l.top1_agree == 0);
  CHECK(l.argmax_a == 1);
  CHECK(l.argmax_b == 0);
  CHECK(l.kl_div == Approx(double(reference_kl(a.data(), b.data(), 2))).epsilon(1e-12));
  CHECK(l.kl_div == Approx(kl2).epsilon(1e-6));  // ln2 rounded to float
  // Shifting a row changes nothing, however far: no overflow, no underflow to 0/0.
  const std::vector<float> a_far = {1000.0f, 1000.0f + ln2}, b_far = {-5000.0f, -5000.0f};
  const auto far = compare_logits(a_far, b_far, 0);
  CHECK(far.kl_div == Approx(double(reference_kl(a_far.data(), b_far.data(), 2))).epsilon(1e-9));
  CHECK(std::isfinite(far.kl_div));
  // Identical logits: KL exactly 0, top-1 agrees.
  l = compare_logits(a, a, 0);
  CHECK(l.kl_div == 0.0);
  CHECK(l.top1_agree == 1);

  // Rows x vocab of random logits; b = a + noise, and row 2 with its top two swapped on B.
  constexpr size_t kRows = 4, kVocab = 3001;
  auto la = random_values(kRows * kVocab, 41, 4.0f);
  auto lb = la;
  const auto noise = random_values(lb.size(), 42, 0.05f);
  for (size_t i = 0; i < lb.size(); ++i) lb[i] += noise[i];
  {
    float* row = lb.data() + 2 * kVocab;
    const size_t top = reference_argmax(la.data() + 2 * kVocab, kVocab);
    row[(top + 1) % kVocab] = la[2 * kVocab + top] + 1.0f;
  }
  const auto rows = compare_logits(la, lb, kVocab);
  CHECK(rows.rows == kRows);
  CHECK(rows.row_length == kVocab);
  long double kl_sum = 0, kl_max = 0;
  size_t agree = 0;
  for (size_t r = 0; r < kRows; ++r) {
    const float* ra = la.data() + r * kVocab;
    const float* rb = lb.data() + r * kVocab;
    const long double kl = reference_kl(ra, rb, kVocab);
    kl_sum += kl;
    kl_max = std::max(kl_max, kl);
    agree += reference_argmax(ra, kVocab) == reference_argmax(rb, kVocab);
  }
  CHECK(agree == kRows - 1);
  CHECK(rows.top1_agree == agree);
  CHECK(rows.top1_agree_fraction() == Approx(double(agree) / kRows));
  CHECK(rows.kl_div == Approx(double(kl_sum / kRows)).epsilon(1e-9));
  CHECK(rows.kl_div_max == Approx(double(kl_max)).epsilon(1e-9));
  // The same data as one row is a different (single) distribution.
  const auto one = compare_logits(la, lb, 0);
  CHECK(one.rows == 1);
  CHECK(one.kl_div == Approx(double(reference_kl(la.data(), lb.data(), la.size()))).epsilon(1e-9));

  // A row holding a NaN is left out; the others still count.
  auto lnan = lb;
  lnan[kVocab + 5] = std::numeric_limits<float>::quiet_NaN();
  const auto skipped = compare_logits(la, lnan, kVocab);
  CHECK(skipped.rows == kRows - 1);
  CHECK_THROWS_WITH(compare_logits(la, lb, 1000),
                    Catch::Contains("do not split into rows of 1000"));
  CHECK_THROWS_WITH(compare_logits(la, std::vector<float>{1, 2}, 0),
                    Catch::Contains("element counts differ"));
}

TEST_CASE("a pure scale error: cosine 1, NMSE (k-1)^2, diverged by default", "[trace][diff]") {
  const auto a = random_values(4096, 7, 2.0f);
  auto scaled = [&](double k) {
    std::vector<float> b(a.size());
    for (size_t i = 0; i < a.size(); ++i) b[i] = float(k * double(a[i]));
    return b;
  };
  // Reference NMSE on the rounded float values, in long double.
  auto reference_nmse = [&](const std::vector<float>& b) {
    long double sq = 0, na = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const long double d = (long double)a[i] - b[i];
      sq += d * d;
      na += (long double)a[i] * a[i];
    }
    return double(sq / na);
  };
  const Thresholds defaults;
  const auto b15 = scaled(1.5);
  const auto m = compare_values(a, b15, 0);
  CHECK(m.cosine_sim == Approx(1.0).margin(1e-12));
  CHECK_FALSE(m.cosine_fails(defaults));
  CHECK(m.nmse == Approx(0.25).epsilon(1e-6));
  CHECK(m.nmse == Approx(reference_nmse(b15)).epsilon(1e-12));
  CHECK(m.rel_l2 == Approx(0.5).epsilon(1e-6));
  CHECK_FALSE(m.passes(defaults));
  CHECK_THAT(failure_reasons(m, defaults), Catch::Equals("NMSE 0.25 > 1e-05"));
  // Before --max-nmse (cosine only) it passed: the blindness this rule removes.
  CHECK(m.passes(Thresholds{0.999, std::numeric_limits<double>::infinity()}));

  // The scale factors the default catches: |k - 1| > sqrt(1e-5) = 0.32 %.
  for (double k : {0.5, 0.9, 0.99, 0.9965, 1.0035, 1.01, 1.1, 2.0, -1.0}) {
    INFO("k = " << k);
    const auto mk = compare_values(a, scaled(k), 0);
    CHECK(mk.nmse == Approx((k - 1) * (k - 1)).epsilon(1e-4));
    CHECK_FALSE(mk.passes(defaults));
  }
  for (double k : {0.9975, 0.999, 1.001, 1.0025}) {
    INFO("k = " << k);
    CHECK(compare_values(a, scaled(k), 0).passes(defaults));
  }
}

TEST_CASE("metrics are printed so they never read on the wrong side of a threshold",
          "[trace][diff]") {
  CHECK(format_metric(0.25) == "0.25");
  CHECK(format_metric(2.6314e-7) == "2.63e-07");
  CHECK(format_metric(std::numeric_limits<double>::infinity()) == "inf");
  CHECK(format_metric_against(1.00004e-5, 1e-5) == "1.00004e-05");
  CHECK(format_metric_against(0.99996e-5, 1e-5) == "9.9996e-06");
  CHECK(format_metric_against(1e-5, 1e-5) == "1e-05");
  CHECK(format_metric_against(0.25, 1e-5) == "0.25");
}

namespace {

// Writes layers 0..n_layers of a few stages into dir; `perturb` (layer, stage) gets noise, each
// of `scale` is multiplied by its factor.
struct Scale {
  uint32_t layer;
  apr_stage stage;
  float factor;
};
void write_trace(const std::filesystem::path& dir, uint32_t n_layers,
                 std::optional<std::pair<uint32_t, apr_stage>> perturb,
                 std::vector<std::pair<uint32_t, apr_stage>> skip = {},
                 std::vector<Scale> scale = {}) {
  const apr_stage stages[] = {APR_STAGE_ATTN_NORM, APR_STAGE_ATTN_SOFTMAX, APR_STAGE_FFN_OUT};
  uint32_t seed = 100;
  auto put = [&](uint32_t layer, apr_stage s) {
    // On a grid of 1/1024, so that x 1.5 is exact in float and a scaled stage's cosine is 1.
    auto v = random_values(64, seed++);
    for (auto& x : v) x = std::round(x * 1024.0f) / 1024.0f;
    for (auto k : skip)
      if (k.first == layer && k.second == s) return;
    if (perturb && perturb->first == layer && perturb->second == s) {
      const auto noise = random_values(64, 999);
      for (size_t i = 0; i < v.size(); ++i) v[i] = noise[i];
    }
    for (const auto& k : scale)
      if (k.layer == layer && k.stage == s)
        for (auto& x : v) x *= k.factor;
    const auto path = dir / stage_file_path(s, layer);
    std::filesystem::create_directories(path.parent_path());
    write_aprt(path, layer, v);
  };
  for (uint32_t l = 0; l < n_layers; ++l)
    for (auto s : stages) put(l, s);
  put(APR_LAYER_NONE, APR_STAGE_FINAL_NORM);
}

}  // namespace

TEST_CASE("directory diff finds the first divergence in forward order", "[trace][compare]") {
  ScratchDir a("cmp-a"), b("cmp-b");
  write_trace(a.path(), 3, std::nullopt);
  write_trace(b.path(), 3, std::make_pair(1u, apr_stage(APR_STAGE_ATTN_SOFTMAX)));
  const auto c =
      compare_directories(list_trace_directory(a.path()), list_trace_directory(b.path()), 0.999);
  CHECK(c.rows.size() == 10);
  CHECK(c.measured == 10);
  CHECK(c.below == 1);
  REQUIRE(c.first_divergence);
  const auto& row = c.rows[c.first_divergence->row];
  CHECK(row.layer == 1);
  CHECK(row.stage == APR_STAGE_ATTN_SOFTMAX);
  REQUIRE(c.first_divergence->previous_row);
  const auto& prev = c.rows[*c.first_divergence->previous_row];
  CHECK(prev.layer == 1);
  CHECK(prev.stage == APR_STAGE_ATTN_NORM);
  CHECK(prev.metrics.cosine_sim == Approx(1.0));
  CHECK_THAT(divergence_summary(c), Catch::Contains("first divergence: layer 1 attn_softmax") &&
                                        Catch::Contains("stage before it: layer 1 attn_norm"));
  CHECK_THAT(comparison_grid_text(c), Catch::Contains("*"));

  const auto j = nlohmann::json::parse(comparison_json(c, "apr-trace-diff-v1", {{"k", "v"}}));
  CHECK(j["min_cosine"] == 0.999);
  CHECK(j["max_nmse"] == 1e-5);
  for (const char* key : {"cosine_sim", "nmse", "rel_l2", "max_abs_diff", "max_abs_diff_index",
                          "rms_diff", "below_threshold"})
    CHECK(j["rows"][0].contains(key));
  for (const char* key : {"cosine_sim", "nmse", "rel_l2", "max_abs_diff", "failed"})
    CHECK(j["first_divergence"].contains(key));
  CHECK(j["first_divergence"]["nmse"].get<double>() == Approx(row.metrics.nmse));
  CHECK(j["first_divergence"]["previous"]["nmse"] == 0.0);
  CHECK(j["first_divergence"]["layer"] == 1);
  CHECK(j["first_divergence"]["stage"] == "attn_softmax");
  CHECK(j["first_divergence"]["previous"]["stage"] == "attn_norm");
  CHECK(j["k"] == "v");
  CHECK(j["rows"].size() == 10);

  const std::string html = comparison_html(c, "bisect", {{"model", "<tiny & odd>"}});
  CHECK_THAT(html, Catch::StartsWith("<!DOCTYPE html>") && Catch::Contains("<style>") &&
                       Catch::Contains("class=\"first\"") &&
                       Catch::Contains("&lt;tiny &amp; odd&gt;") &&
                       Catch::Contains("attn_softmax") && Catch::Contains("final_norm"));
  CHECK_THAT(html, !Catch::Contains("<script") && !Catch::Contains("http") &&
                       !Catch::Contains("<link") && !Catch::Contains("src="));
  // Every metric in the tooltips and for the first divergence, the NMSE threshold stated.
  CHECK_THAT(html, Catch::Contains("title=\"layer 1 attn_softmax: cosine ") &&
                       Catch::Contains(", NMSE ") && Catch::Contains(", rel L2 ") &&
                       Catch::Contains("; DIVERGED: cosine ") &&
                       Catch::Contains("class=\"first-details\">First divergence, layer 1 "
                                       "attn_softmax: cosine ") &&
                       Catch::Contains("NMSE &le; 1e-05"));
}

TEST_CASE("a stage scaled by 1.5 is named though every cosine is 1", "[trace][compare]") {
  // B's layer 1 attn_softmax and everything downstream that carries it (ffn_out) are x 1.5: a
  // scale fault whose cosine is 1 everywhere. Later stages are unchanged.
  ScratchDir a("scale-a"), b("scale-b");
  write_trace(a.path(), 3, std::nullopt);
  write_trace(b.path(), 3, std::nullopt, {},
              {{1, APR_STAGE_ATTN_SOFTMAX, 1.5f},
               {1, APR_STAGE_FFN_OUT, 1.5f},
               {2, APR_STAGE_FFN_OUT, 1.5f}});
  const auto la = list_trace_directory(a.path()), lb = list_trace_directory(b.path());
  const auto c = compare_directories(la, lb, Thresholds{});
  for (const auto& r : c.rows) CHECK(r.metrics.cosine_sim == Approx(1.0).margin(1e-12));
  CHECK(c.below == 3);
  REQUIRE(c.first_divergence);
  const auto& row = c.rows[c.first_divergence->row];
  CHECK(row.layer == 1);
  CHECK(row.stage == APR_STAGE_ATTN_SOFTMAX);
  CHECK(row.metrics.nmse == Approx(0.25).epsilon(1e-6));
  CHECK_THAT(divergence_summary(c),
             Catch::StartsWith("first divergence: layer 1 attn_softmax, NMSE 0.25 > 1e-05 "
                               "(cosine 1.000000); stage before it: layer 1 attn_norm, cosine "
                               "1.000000, NMSE 0"));
  CHECK_THAT(comparison_grid_text(c), Catch::Contains("1.000000*") &&
                                          Catch::Contains("1.000000!") &&
                                          Catch::Contains("NMSE > 1e-05"));
  CHECK_THAT(comparison_list_text(c), Catch::Contains("DIVERGED: NMSE 0.25 > 1e-05"));
  const auto j = nlohmann::json::parse(comparison_json(c, "apr-trace-diff-v1", {}));
  CHECK(j["first_divergence"]["failed"] == nlohmann::json::array({"nmse"}));
  CHECK(j["first_divergence"]["nmse"].get<double>() == Approx(0.25).epsilon(1e-6));
  CHECK(j["first_divergence"]["rel_l2"].get<double>() == Approx(0.5).epsilon(1e-6));
  CHECK(j["below"] == 3);
  const std::string html = comparison_html(c, "scale", {});
  CHECK_THAT(html, Catch::Contains("failed: NMSE 0.25 &gt; 1e-05"));

  // Cosine alone (the rule before --max-nmse; the old overload keeps NMSE at its default) is
  // blind to it.
  const auto blind =
      compare_directories(la, lb, Thresholds{0.999, std::numeric_limits<double>::infinity()});
  CHECK_FALSE(blind.first_divergence);
  CHECK(blind.exit_status() == 0);
  CHECK_THAT(divergence_summary(blind), Catch::StartsWith("no divergence: every measured stage "
                                                          "has cosine >= 0.999 and NMSE <= inf"));
  CHECK(compare_directories(la, lb, 0.999).first_divergence);
}

TEST_CASE("lm_head is compared as logits, rows from the manifest's shape", "[trace][compare]") {
  ScratchDir a("logit-a"), b("logit-b");
  constexpr size_t kRows = 2, kVocab = 32;
  const auto la = random_values(kRows * kVocab, 5, 3.0f);
  auto lb = la;
  const size_t top = reference_argmax(la.data() + kVocab, kVocab);  // row 1's top-1 moves
  lb[kVocab + (top + 1) % kVocab] = la[kVocab + top] + 0.5f;
  for (const auto& [dir, values] : {std::pair{a.path(), la}, std::pair{b.path(), lb}}) {
    write_aprt(dir / "lm_head.bin", APR_LAYER_NONE, values);
    write_aprt(dir / "final_norm.bin", APR_LAYER_NONE, random_values(16, 9));
  }
  // Without manifests the whole tensor is one row.
  auto c = compare_directories(list_trace_directory(a.path()), list_trace_directory(b.path()),
                               Thresholds{});
  REQUIRE(c.rows.size() == 2);
  REQUIRE(c.rows[1].stage == APR_STAGE_LM_HEAD);
  REQUIRE(c.rows[1].metrics.logits);
  CHECK_FALSE(c.rows[0].metrics.logits);
  CHECK(c.rows[1].metrics.logits->rows == 1);
  CHECK(c.rows[1].metrics.logits->kl_div ==
        Approx(double(reference_kl(la.data(), lb.data(), la.size()))).epsilon(1e-9));

  // With a manifest that says [2, 32]: two rows, one of which disagrees.
  Manifest m;
  m.architecture = "llama";
  m.backend = "cpu";
  m.token_ids = {1, 2};
  ManifestFile f;
  f.path = "final_norm.bin";
  f.stage = APR_STAGE_FINAL_NORM;
  f.shape = {1, 16};
  m.files.push_back(f);
  f.path = "lm_head.bin";
  f.stage = APR_STAGE_LM_HEAD;
  f.shape = {kRows, kVocab};
  m.files.push_back(f);
  write_manifest(a.path(), m);
  c = compare_directories(list_trace_directory(a.path()), list_trace_directory(b.path()),
                          Thresholds{});
  const auto& l = *c.rows[1].metrics.logits;
  CHECK(l.rows == kRows);
  CHECK(l.row_length == kVocab);
  CHECK(l.top1_agree == 1);
  const long double kl0 = reference_kl(la.data(), lb.data(), kVocab);
  const long double kl1 = reference_kl(la.data() + kVocab, lb.data() + kVocab, kVocab);
  CHECK(l.kl_div == Approx(double((kl0 + kl1) / 2)).epsilon(1e-9));
  const auto j = nlohmann::json::parse(comparison_json(c, "apr-trace-diff-v1", {}));
  CHECK(j["rows"][1]["top1_agree"] == 0.5);
  CHECK(j["rows"][1]["logit_rows"] == 2);
  CHECK(j["rows"][1]["kl_div"].get<double>() == Approx(double((kl0 + kl1) / 2)).epsilon(1e-9));
  CHECK_FALSE(j["rows"][0].contains("kl_div"));
  CHECK_THAT(comparison_list_text(c), Catch::Contains("top-1 agrees in 1/2 rows, KL "));
  REQUIRE(c.first_divergence);
  CHECK_THAT(divergence_summary(c), Catch::Contains("model lm_head, ") &&
                                        Catch::Contains("top-1 agrees in 1/2 rows, KL "));
  CHECK(j["first_divergence"]["top1_agree"] == 0.5);

  // Manifests that disagree on the row length are refused.
  m.files[1].shape = {kRows * kVocab};
  write_manifest(b.path(), m);
  CHECK_THROWS_WITH(compare_directories(list_trace_directory(a.path()),
                                        list_trace_directory(b.path()), Thresholds{}),
                    Catch::Contains("rows of 32 logits") && Catch::Contains("but of 64"));
}

TEST_CASE("identical directories do not diverge", "[trace][compare]") {
  ScratchDir a("same-a"), b("same-b");
  write_trace(a.path(), 2, std::nullopt);
  write_trace(b.path(), 2, std::nullopt);
  const auto c =
      compare_directories(list_trace_directory(a.path()), list_trace_directory(b.path()), 0.999999);
  CHECK_FALSE(c.first_divergence);
  CHECK(c.below == 0);
  CHECK_THAT(divergence_summary(c), Catch::Contains("no divergence"));
}

TEST_CASE("one-sided files are UNMEASURED, never scored", "[trace][compare]") {
  ScratchDir a("un-a"), b("un-b");
  write_trace(a.path(), 2, std::nullopt);
  // B lacks layer 0's softmax and has a broken layer 1 ffn_out.
  write_trace(b.path(), 2, std::make_pair(1u, apr_stage(APR_STAGE_FFN_OUT)),
              {{0u, APR_STAGE_ATTN_SOFTMAX}});
  const auto c =
      compare_directories(list_trace_directory(a.path()), list_trace_directory(b.path()), 0.999);
  CHECK(c.rows.size() == 7);
  CHECK(c.measured == 6);
  CHECK(c.rows[1].status == PairStatus::kOnlyA);
  REQUIRE(c.first_divergence);
  CHECK(c.rows[c.first_divergence->row].stage == APR_STAGE_FFN_OUT);
  CHECK_THAT(comparison_list_text(c), Catch::Contains("UNMEASURED (only in A)"));
  const auto j = nlohmann::json::parse(comparison_json(c, "apr-trace-diff-v1", {}));
  CHECK(j["rows"][1]["status"] == "unmeasured");
  CHECK_FALSE(j["rows"][1].contains("cosine_sim"));

  // Reversed sides: only in B.
  const auto r =
      compare_directories(list_trace_directory(b.path()), list_trace_directory(a.path()), 0.999);
  CHECK(r.rows[1].status == PairStatus::kOnlyB);
}

TEST_CASE("directory diff errors", "[trace][compare]") {
  ScratchDir a("err-a"), b("err-b"), empty("err-empty");
  write_trace(a.path(), 1, std::nullopt);
  CHECK_THROWS_WITH(compare_directories(list_trace_directory(a.path()),
                                        list_trace_directory(empty.path()), 0.999),
                    Catch::Contains("no stage file is present in both"));
  write_trace(b.path(), 1, std::nullopt);
  write_aprt(b.path() / "layer-0" / "ffn_out.bin", 0, random_values(63, 1));
  CHECK_THROWS_WITH(
      compare_directories(list_trace_directory(a.path()), list_trace_directory(b.path()), 0.999),
      Catch::Contains("layer 0 ffn_out") && Catch::Contains("element count mismatch"));
}
