// SPDX-License-Identifier: MIT
#include "trace_compare/stage_diff.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include <apr/plugin.h>

#include "common/error.hpp"
#include "trace_format/aprt.hpp"

namespace apr::trace {

namespace {

// The same non-finite class on both sides (both NaN, or the same infinity) counts as agreement.
bool same_nonfinite(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::string format_cosine(double c) {
  // Six decimals, cut rather than rounded: 0.9999995 prints as 0.999999, never as 1.000000, so
  // only an exact 1 reads as 1 and a value never looks above a threshold it is below.
  if (!std::isfinite(c)) return fmt("%f", c);
  return fmt("%.6f", std::trunc(c * 1e6) / 1e6);
}

std::string format_cosine_precise(double c) {
  // Nine decimals, more where rounding would carry a value strictly inside (-1, 1) onto +-1.
  for (int digits = 9; digits < 17; ++digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, c);
    if (!(std::fabs(c) < 1 && std::fabs(std::strtod(buf, nullptr)) >= 1)) return buf;
  }
  return fmt("%.17g", c);
}

std::string format_threshold(double x) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, x);  // shortest text that reads back as x
  return std::string(buf, r.ptr);
}

std::string format_layer(uint32_t layer) {
  return layer == APR_LAYER_NONE ? std::string("-") : std::to_string(layer);
}

DiffMetrics compare_values(std::span<const float> a, std::span<const float> b, size_t top_k) {
  if (a.size() != b.size())
    throw Error("element counts differ: " + std::to_string(a.size()) + " against " +
                std::to_string(b.size()));
  DiffMetrics m;
  m.count = a.size();
  double sum_sq = 0, dot = 0, norm_a = 0, norm_b = 0;
  uint64_t finite = 0;
  // The k largest so far, as a min-heap on "larger" so the smallest kept one is on top; memory
  // stays O(k) however large the tensor.
  auto larger = [](const ElementDiff& p, const ElementDiff& q) {
    return p.abs_diff != q.abs_diff ? p.abs_diff > q.abs_diff : p.index < q.index;
  };
  std::vector<ElementDiff> top;
  top.reserve(top_k);
  for (uint64_t i = 0; i < a.size(); ++i) {
    const float x = a[i], y = b[i];
    m.nan_a += std::isnan(x);
    m.nan_b += std::isnan(y);
    if (!std::isfinite(x) || !std::isfinite(y)) {
      if (!same_nonfinite(x, y)) ++m.nonfinite_mismatch;
      continue;
    }
    const double dx = x, dy = y, d = std::fabs(dx - dy);
    ++finite;
    sum_sq += d * d;
    dot += dx * dy;
    norm_a += dx * dx;
    norm_b += dy * dy;
    if (finite == 1 || d > m.max_abs_diff) {
      m.max_abs_diff = d;
      m.max_abs_diff_index = i;
    }
    if (top_k == 0) continue;
    const ElementDiff e{i, x, y, d};
    if (top.size() < top_k) {
      top.push_back(e);
      std::push_heap(top.begin(), top.end(), larger);
    } else if (larger(e, top.front())) {
      std::pop_heap(top.begin(), top.end(), larger);
      top.back() = e;
      std::push_heap(top.begin(), top.end(), larger);
    }
  }
  m.rms_diff = finite ? std::sqrt(sum_sq / double(finite)) : 0.0;
  // One root of the product, not a product of roots: for identical vectors dot == norm_a ==
  // norm_b and sqrt(norm_a * norm_b) is norm_a exactly, so they read as cosine 1, where
  // sqrt(norm_a) * sqrt(norm_b) may exceed norm_a by an ulp and print (cut) as 0.999999.
  m.cosine_sim =
      (norm_a > 0 && norm_b > 0) ? std::clamp(dot / std::sqrt(norm_a * norm_b), -1.0, 1.0) : 0.0;
  std::sort_heap(top.begin(), top.end(), larger);
  m.top = std::move(top);
  return m;
}

FileDiff compare_files(const std::filesystem::path& a, const std::filesystem::path& b,
                       size_t top_k) {
  const AprtTensor ta = read_aprt(a);
  const AprtTensor tb = read_aprt(b);
  if (ta.layer != tb.layer)
    throw Error("layer mismatch: " + a.string() + " is layer " + format_layer(ta.layer) + ", " +
                b.string() + " is layer " + format_layer(tb.layer));
  if (ta.values.size() != tb.values.size())
    throw Error("element count mismatch: " + a.string() + " has " +
                std::to_string(ta.values.size()) + ", " + b.string() + " has " +
                std::to_string(tb.values.size()));
  FileDiff d;
  d.path_a = a.string();
  d.path_b = b.string();
  d.layer = ta.layer;
  d.metrics = compare_values(ta.values, tb.values, top_k);
  return d;
}

std::string file_diff_json(const FileDiff& d) {
  using nlohmann::json;
  const DiffMetrics& m = d.metrics;
  json top = json::array();
  for (const auto& e : m.top)
    top.push_back({{"index", e.index}, {"a", e.a}, {"b", e.b}, {"abs_diff", e.abs_diff}});
  json j = {{"schema", "apr-stage-diff-v1"},
            {"path_a", d.path_a},
            {"path_b", d.path_b},
            {"layer", d.layer == APR_LAYER_NONE ? json(nullptr) : json(d.layer)},
            {"dim_product", m.count},
            {"max_abs_diff", m.max_abs_diff},
            {"max_abs_diff_index", m.max_abs_diff_index},
            {"rms_diff", m.rms_diff},
            {"cosine_sim", m.cosine_sim},
            {"top_diffs", top},
            {"nan_count_a", m.nan_a},
            {"nan_count_b", m.nan_b},
            {"nonfinite_mismatch", m.nonfinite_mismatch}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string file_diff_text(const FileDiff& d, double min_cosine) {
  const DiffMetrics& m = d.metrics;
  std::string s;
  s += "a: " + d.path_a + "\nb: " + d.path_b + "\n";
  s += "layer " + format_layer(d.layer) + ", " + std::to_string(m.count) + " elements\n";
  s += "cosine similarity  " + format_cosine_precise(m.cosine_sim) + "\n";
  s += "max |a-b|          " + fmt("%.6g", m.max_abs_diff) + " at index " +
       std::to_string(m.max_abs_diff_index) + "\n";
  s += "rms (a-b)          " + fmt("%.6g", m.rms_diff) + "\n";
  s += "NaN                a: " + std::to_string(m.nan_a) + ", b: " + std::to_string(m.nan_b);
  if (m.nonfinite_mismatch)
    s += ", " + std::to_string(m.nonfinite_mismatch) + " elements finite on one side only";
  s += "\n";
  if (!m.top.empty()) {
    s += "largest differences:\n";
    s += "  index            a                b                |a-b|\n";
    for (const auto& e : m.top) {
      char line[160];
      std::snprintf(line, sizeof line, "  %-16llu %-16.9g %-16.9g %.6g\n",
                    static_cast<unsigned long long>(e.index), double(e.a), double(e.b), e.abs_diff);
      s += line;
    }
  }
  const bool above = m.cosine_sim >= min_cosine;
  s += m.passes(min_cosine) ? "OK: " : "DIVERGED: ";
  s += "cosine " + format_cosine_precise(m.cosine_sim) + (above ? " >= " : " < ") +
       format_threshold(min_cosine);
  if (m.nonfinite_mismatch) s += ", but NaN/inf on one side where the other is finite";
  s += "\n";
  return s;
}

}  // namespace apr::trace
