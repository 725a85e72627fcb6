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
  CHECK_FALSE(m.passes(0.999));
  CHECK(m.passes(0.9));

  CHECK(compare_values(a, a, 10).cosine_sim == Approx(1.0).epsilon(1e-15));
  CHECK(compare_values(a, a, 10).max_abs_diff == 0.0);
  CHECK(compare_values(a, a, 10).top.size() == 4);
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
  for (size_t k = 1; k < m.top.size(); ++k) CHECK(m.top[k - 1].abs_diff >= m.top[k].abs_diff);
  CHECK(m.top[0].index == imx);
}

TEST_CASE("cosine is 0 when a norm is 0; count mismatch is an error", "[trace][diff]") {
  const std::vector<float> z = {0, -0.0f, 0};
  const std::vector<float> a = {1, 2, 3};
  CHECK(compare_values(z, a, 3).cosine_sim == 0.0);
  CHECK(compare_values(a, z, 3).cosine_sim == 0.0);
  CHECK(compare_values(z, z, 3).cosine_sim == 0.0);
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
  CHECK(m.passes(0.999));
  const std::vector<float> c = {1, nan, 3, 4, inf};
  m = compare_values(a, c, 3);
  CHECK(m.nan_a == 1);
  CHECK(m.nan_b == 1);
  CHECK(m.nonfinite_mismatch == 3);
  CHECK_FALSE(m.passes(0.0));
  CHECK(std::isfinite(m.cosine_sim));
  CHECK(std::isfinite(m.max_abs_diff));
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
                          "max_abs_diff_index", "rms_diff", "cosine_sim", "top_diffs"})
    CHECK(j.contains(key));
  CHECK(j["layer"] == 3);
  CHECK(j["dim_product"] == 4);
  CHECK(j["max_abs_diff_index"] == 3);
  REQUIRE(j["top_diffs"].size() == 1);
  CHECK(j["top_diffs"][0]["index"] == 3);
  CHECK(j["top_diffs"][0]["a"] == 4.0);
  CHECK(j["top_diffs"][0]["b"] == 3.0);
  CHECK(j["top_diffs"][0]["abs_diff"] == 1.0);
  CHECK_THAT(file_diff_text(d, 0.999), Catch::Contains("DIVERGED"));
}

namespace {

// Writes layers 0..n_layers of a few stages into dir; `perturb` (layer, stage) gets noise.
void write_trace(const std::filesystem::path& dir, uint32_t n_layers,
                 std::optional<std::pair<uint32_t, apr_stage>> perturb,
                 std::vector<std::pair<uint32_t, apr_stage>> skip = {}) {
  const apr_stage stages[] = {APR_STAGE_ATTN_NORM, APR_STAGE_ATTN_SOFTMAX, APR_STAGE_FFN_OUT};
  uint32_t seed = 100;
  auto put = [&](uint32_t layer, apr_stage s) {
    auto v = random_values(64, seed++);
    for (auto k : skip)
      if (k.first == layer && k.second == s) return;
    if (perturb && perturb->first == layer && perturb->second == s) {
      const auto noise = random_values(64, 999);
      for (size_t i = 0; i < v.size(); ++i) v[i] = noise[i];
    }
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
