// SPDX-License-Identifier: MIT
#include "trace_compare/html_report.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "trace_format/stages.hpp"

namespace apr::trace {

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Green where the pair passes. A diverged cell runs from yellow, just past a threshold, to red:
// at cosine <= 0.9, NMSE >= 0.1 (a 32 % error) or NaN/inf on one side; the worse test decides.
std::string cell_colour(const DiffMetrics& m, const Thresholds& th) {
  if (m.passes(th)) return "#8fd18f";
  double t = 1.0;
  if (m.cosine_fails(th)) {
    const double nines = -std::log10(std::max(1e-12, 1.0 - m.cosine_sim));  // 1 at 0.9, 3 at 0.999
    const double target = -std::log10(std::max(1e-12, 1.0 - th.min_cosine));
    t = std::min(t, std::clamp((nines - 1.0) / std::max(1e-9, target - 1.0), 0.0, 1.0));
  }
  if (m.nmse_fails(th)) {
    const double digits = -std::log10(std::max(1e-300, m.nmse));  // 1 at 0.1
    const double target = -std::log10(std::max(1e-300, th.max_nmse));
    t = std::min(t, std::clamp((digits - 1.0) / std::max(1e-9, target - 1.0), 0.0, 1.0));
  }
  if (m.nonfinite_mismatch) t = 0.0;
  const int red = 230;
  const int green = static_cast<int>(80 + 150 * t);
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x50", red, green);
  return buf;
}

// Every metric of a measured pair, for a cell's tooltip and the first divergence's details.
std::string metrics_text(const DiffMetrics& m) {
  std::string s = "cosine " + format_cosine_precise(m.cosine_sim) + ", NMSE " +
                  format_metric(m.nmse) + ", rel L2 " + format_metric(m.rel_l2) + ", max |a-b| " +
                  fmt("%.4g", m.max_abs_diff) + " at " + std::to_string(m.max_abs_diff_index) +
                  ", rms " + fmt("%.4g", m.rms_diff) + ", NaN " + std::to_string(m.nan_a) + "/" +
                  std::to_string(m.nan_b);
  if (m.nonfinite_mismatch)
    s += ", " + std::to_string(m.nonfinite_mismatch) + " NaN/inf on one side only";
  if (m.logits && m.logits->rows) {
    const LogitMetrics& l = *m.logits;
    s += l.rows == 1 ? (l.top1_agree ? ", top-1 agrees (" + std::to_string(l.argmax_a) + ")"
                                     : ", top-1 differs (a " + std::to_string(l.argmax_a) + ", b " +
                                           std::to_string(l.argmax_b) + ")")
                     : ", top-1 agrees in " + std::to_string(l.top1_agree) + "/" +
                           std::to_string(l.rows) + " rows";
    s += ", KL(a||b) " + format_metric(l.kl_div) + " nats";
  }
  return s;
}

}  // namespace

std::string comparison_html(const TraceComparison& c, const std::string& title,
                            const std::vector<std::pair<std::string, std::string>>& facts) {
  std::array<bool, kStageCount> used{};
  std::vector<std::pair<uint32_t, uint32_t>> lines;  // (step, layer), in order
  for (const auto& r : c.rows) {
    used[r.stage] = true;
    if (lines.empty() || lines.back() != std::pair(r.step, r.layer))
      lines.emplace_back(r.step, r.layer);
  }
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
       escape(title) + "</title>\n<style>\n";
  h += "body{font-family:sans-serif;margin:1.5em;color:#222}\n"
       "table.map{border-collapse:collapse;font-size:12px}\n"
       "table.map th,table.map td{border:1px solid #999;padding:3px 5px;text-align:center}\n"
       "table.map th.stage{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap}\n"
       "td.none{background:#eee;color:#888}\n"
       "td.unmeasured{background:#ccc;color:#333;font-style:italic}\n"
       "td.first{outline:3px solid #000;outline-offset:-3px;font-weight:bold}\n"
       "dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 12px}\n"
       "dl.facts dt{font-weight:bold}\n"
       ".verdict{font-size:1.1em;margin:1em 0;padding:.5em;border-left:6px solid #555}\n"
       "</style>\n</head>\n<body>\n";
  h += "<h1>" + escape(title) + "</h1>\n<dl class=\"facts\">\n";
  for (const auto& [k, v] : facts) h += "<dt>" + escape(k) + "</dt><dd>" + escape(v) + "</dd>\n";
  h += "<dt>threshold</dt><dd>cosine &ge; " + format_threshold(c.min_cosine) + ", NMSE &le; " +
       format_threshold(c.max_nmse) +
       " (NMSE: squared error over A&rsquo;s energy, &Sigma;(a&minus;b)&sup2; / &Sigma;a&sup2;)"
       "</dd>\n</dl>\n";
  h += "<p class=\"verdict\">" + escape(divergence_summary(c)) + "</p>\n";
  if (c.first_divergence) {
    const StageRow& r = c.rows[c.first_divergence->row];
    h += "<p class=\"first-details\">First divergence, " + escape(row_label(r)) + ": " +
         escape(metrics_text(r.metrics)) +
         "; failed: " + escape(failure_reasons(r.metrics, c.thresholds())) + "</p>\n";
  }
  h += "<table class=\"map\">\n<tr><th>layer</th>";
  for (apr_stage st : stages_in_forward_order())
    if (used[st]) h += "<th class=\"stage\">" + std::string(stage_name(st)) + "</th>";
  h += "</tr>\n";
  size_t i = 0;
  for (const auto& [step, layer] : lines) {
    const std::string name = layer == APR_LAYER_NONE ? std::string("model") : std::to_string(layer);
    h += "<tr><th>" + (step ? "step " + std::to_string(step) + ", " + name : name) + "</th>";
    for (apr_stage st : stages_in_forward_order()) {
      if (!used[st]) continue;
      if (i >= c.rows.size() || c.rows[i].step != step || c.rows[i].layer != layer ||
          c.rows[i].stage != st) {
        h += "<td class=\"none\" title=\"not traced\">&middot;</td>";
        continue;
      }
      const StageRow& r = c.rows[i];
      const std::string where = row_label(r);
      if (r.status != PairStatus::kMeasured) {
        h += "<td class=\"unmeasured\" title=\"" +
             escape(where + ": " + pair_status_name(r.status)) + "\">n/a</td>";
      } else {
        const DiffMetrics& m = r.metrics;
        const bool first = c.first_divergence && c.first_divergence->row == i;
        const std::string verdict = m.passes(c.thresholds())
                                        ? std::string()
                                        : "; DIVERGED: " + failure_reasons(m, c.thresholds());
        const std::string tip = where + ": " + metrics_text(m) + verdict;
        h += "<td" + std::string(first ? " class=\"first\"" : "") +
             " style=\"background:" + cell_colour(m, c.thresholds()) + "\" title=\"" + escape(tip) +
             "\">" + (m.nonfinite_mismatch ? std::string("NaN") : format_cosine(m.cosine_sim)) +
             "</td>";
      }
      ++i;
    }
    h += "</tr>\n";
  }
  h += "</table>\n<p>Cells show the cosine similarity of the two sides' tensors (hover for "
       "every metric: NMSE, relative L2, max |a&minus;b|, and top-1 and KL for lm_head); red "
       "cells diverge (cosine below or NMSE above its threshold, or NaN/inf on one side only), "
       "the outlined cell is the first of them in forward order; n/a marks a stage traced on "
       "one side only (UNMEASURED).</p>\n";
  h += "<p>A: " + escape(c.dir_a) + "<br>B: " + escape(c.dir_b) + "</p>\n</body>\n</html>\n";
  return h;
}

}  // namespace apr::trace
