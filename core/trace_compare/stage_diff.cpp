// SPDX-License-Identifier: MIT
#include "trace_compare/stage_diff.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>

#include <apr/plugin.h>

#include "common/error.hpp"
#include "common/logit_math.hpp"
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

std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : ", ") + p;
  return s;
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

std::string format_metric(double x) {
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return fmt("%.3g", x);
}

std::string format_metric_against(double value, double threshold) {
  // Three significant digits, more where rounding would put the printed value on the other side
  // of the threshold or onto it.
  if (!std::isfinite(value) || !std::isfinite(threshold)) return format_metric(value);
  for (int digits = 3; digits < 17; ++digits) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", digits, value);
    const double shown = std::strtod(buf, nullptr);
    if ((shown > threshold) == (value > threshold) && (shown < threshold) == (value < threshold))
      return buf;
  }
  return fmt("%.17g", value);
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
  // A is the reference: the error's energy relative to A's. A zero A is matched only by a zero B.
  m.nmse = norm_a > 0   ? sum_sq / norm_a
           : sum_sq > 0 ? std::numeric_limits<double>::infinity()
                        : 0.0;
  m.rel_l2 = std::sqrt(m.nmse);
  // One root of the product, not a product of roots: for identical vectors dot == norm_a ==
  // norm_b and sqrt(norm_a * norm_b) is norm_a exactly, so they read as cosine 1, where
  // sqrt(norm_a) * sqrt(norm_b) may exceed norm_a by an ulp and print (cut) as 0.999999.
  m.cosine_sim =
      (norm_a > 0 && norm_b > 0) ? std::clamp(dot / std::sqrt(norm_a * norm_b), -1.0, 1.0) : 0.0;
  std::sort_heap(top.begin(), top.end(), larger);
  m.top = std::move(top);
  return m;
}

LogitMetrics compare_logits(std::span<const float> a, std::span<const float> b,
                            uint64_t row_length) {
  if (a.size() != b.size())
    throw Error("element counts differ: " + std::to_string(a.size()) + " against " +
                std::to_string(b.size()));
  LogitMetrics lm;
  const uint64_t n = a.size();
  lm.row_length = row_length ? row_length : n;
  if (n == 0) return lm;
  if (n % lm.row_length)
    throw Error("logits of " + std::to_string(n) + " elements do not split into rows of " +
                std::to_string(lm.row_length));
  double kl_sum = 0;
  for (uint64_t start = 0; start < n; start += lm.row_length) {
    const auto ra = a.subspan(start, lm.row_length);
    const auto rb = b.subspan(start, lm.row_length);
    bool finite = true;
    for (uint64_t i = 0; i < lm.row_length && finite; ++i)
      finite = std::isfinite(ra[i]) && std::isfinite(rb[i]);
    if (!finite) continue;
    const uint64_t ia = uint64_t(argmax(ra)), ib = uint64_t(argmax(rb));
    const double kl = kl_divergence(ra, rb);  // log-softmax in f64, largest logit subtracted
    ++lm.rows;
    lm.top1_agree += ia == ib;
    lm.argmax_a = ia;
    lm.argmax_b = ib;
    kl_sum += kl;
    lm.kl_div_max = std::max(lm.kl_div_max, kl);
  }
  lm.kl_div = lm.rows ? kl_sum / double(lm.rows) : 0.0;
  return lm;
}

FileDiff compare_files(const std::filesystem::path& a, const std::filesystem::path& b, size_t top_k,
                       std::optional<uint64_t> logit_row_length) {
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
  if (logit_row_length) d.metrics.logits = compare_logits(ta.values, tb.values, *logit_row_length);
  return d;
}

std::string file_diff_json(const FileDiff& d) {
  using nlohmann::json;
  const DiffMetrics& m = d.metrics;
  json top = json::array();
  for (const auto& e : m.top)
    top.push_back({{"index", e.index}, {"a", e.a}, {"b", e.b}, {"abs_diff", e.abs_diff}});
  // nmse and rel_l2 are +inf (null in JSON) only when A is all zero and B is not.
  json j = {{"schema", "apr-stage-diff-v1"},
            {"path_a", d.path_a},
            {"path_b", d.path_b},
            {"layer", d.layer == APR_LAYER_NONE ? json(nullptr) : json(d.layer)},
            {"dim_product", m.count},
            {"max_abs_diff", m.max_abs_diff},
            {"max_abs_diff_index", m.max_abs_diff_index},
            {"rms_diff", m.rms_diff},
            {"cosine_sim", m.cosine_sim},
            {"nmse", m.nmse},
            {"rel_l2", m.rel_l2},
            {"top_diffs", top},
            {"nan_count_a", m.nan_a},
            {"nan_count_b", m.nan_b},
            {"nonfinite_mismatch", m.nonfinite_mismatch}};
  if (m.logits) {
    j["logit_rows"] = m.logits->rows;
    j["top1_agree"] = m.logits->top1_agree_fraction();
    j["kl_div"] = m.logits->kl_div;
    j["kl_div_max"] = m.logits->kl_div_max;
    j["argmax_a"] = m.logits->argmax_a;
    j["argmax_b"] = m.logits->argmax_b;
  }
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string failure_reasons(const DiffMetrics& m, const Thresholds& t) {
  std::vector<std::string> parts;
  if (m.cosine_fails(t))
    parts.push_back("cosine " + format_cosine(m.cosine_sim) + " < " +
                    format_threshold(t.min_cosine));
  if (m.nmse_fails(t))
    parts.push_back("NMSE " + format_metric_against(m.nmse, t.max_nmse) + " > " +
                    format_threshold(t.max_nmse));
  if (m.nonfinite_mismatch)
    parts.push_back(std::to_string(m.nonfinite_mismatch) + " NaN/inf on one side only");
  return join(parts);
}

std::string file_diff_text(const FileDiff& d, const Thresholds& t) {
  const DiffMetrics& m = d.metrics;
  std::string s;
  s += "a: " + d.path_a + "\nb: " + d.path_b + "\n";
  s += "layer " + format_layer(d.layer) + ", " + std::to_string(m.count) + " elements\n";
  s += "cosine similarity  " + format_cosine_precise(m.cosine_sim) + "\n";
  s += "NMSE               " + format_metric_against(m.nmse, t.max_nmse) +
       "   (sum (a-b)^2 / sum a^2)\n";
  s += "relative L2        " + format_metric(m.rel_l2) + "   (|a-b| / |a|)\n";
  s += "max |a-b|          " + fmt("%.6g", m.max_abs_diff) + " at index " +
       std::to_string(m.max_abs_diff_index) + "\n";
  s += "rms (a-b)          " + fmt("%.6g", m.rms_diff) + "\n";
  s += "NaN                a: " + std::to_string(m.nan_a) + ", b: " + std::to_string(m.nan_b);
  if (m.nonfinite_mismatch)
    s += ", " + std::to_string(m.nonfinite_mismatch) + " elements finite on one side only";
  s += "\n";
  if (m.logits) {
    const LogitMetrics& l = *m.logits;
    if (l.rows == 0)
      s += "top-1, KL          no row of logits is finite on both sides\n";
    else if (l.rows == 1)
      s += "top-1 (argmax)     " +
           (l.top1_agree ? "agrees: index " + std::to_string(l.argmax_a)
                         : "differs: a " + std::to_string(l.argmax_a) + ", b " +
                               std::to_string(l.argmax_b)) +
           "\n";
    else
      s += "top-1 (argmax)     agrees in " + std::to_string(l.top1_agree) + " of " +
           std::to_string(l.rows) + " rows\n";
    if (l.rows)
      s += "KL(a||b)           " + format_metric(l.kl_div) + " nats (softmax of the logits" +
           (l.rows > 1 ? ", mean over rows; largest " + format_metric(l.kl_div_max) : "") + ")\n";
  }
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
  // The verdict names every test with its value: the failing ones first.
  const bool cos_ok = !m.cosine_fails(t), nmse_ok = !m.nmse_fails(t);
  const std::string cos = "cosine " + format_cosine_precise(m.cosine_sim) +
                          (cos_ok ? " >= " : " < ") + format_threshold(t.min_cosine);
  const std::string nmse = "NMSE " + format_metric_against(m.nmse, t.max_nmse) +
                           (nmse_ok ? " <= " : " > ") + format_threshold(t.max_nmse);
  if (m.passes(t)) {
    s += "OK: " + cos + ", " + nmse;
  } else {
    std::vector<std::string> failed, held;
    (cos_ok ? held : failed).push_back(cos);
    (nmse_ok ? held : failed).push_back(nmse);
    if (m.nonfinite_mismatch) failed.push_back("NaN/inf on one side where the other is finite");
    s += "DIVERGED: " + join(failed) + (held.empty() ? "" : " (" + join(held) + ")");
  }
  s += "\n";
  return s;
}

}  // namespace apr::trace
