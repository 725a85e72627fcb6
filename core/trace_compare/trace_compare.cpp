// SPDX-License-Identifier: MIT
#include "trace_compare/trace_compare.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "trace_format/stages.hpp"

namespace apr::trace {

namespace {

// Short column heads for the grid, indexed by apr_stage.
constexpr std::array<const char*, kStageCount> kShortNames = {
    "embed",   "attn_nrm",  "qkv_mm",   "qkv_bias", "q_rope",    "k_rope",  "scores",
    "softmax", "attn",      "attn_out", "attn_res", "ffn_nrm",   "gate",    "up",
    "silu",    "swigl",     "ffn_out",  "ffn_res",  "final_nrm", "lm_head", "q_nrm",
    "k_nrm",   "attn_pnrm", "gelu",     "geglu",    "ffn_pnrm"};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

// The length of one row of lm_head's logits: the last dimension of its shape in A's manifest,
// else B's; 0 (the whole tensor is one row) when neither lists a shape.
uint64_t logit_row_length(const TraceDirectory& a, const TraceDirectory& b) {
  std::optional<uint64_t> found[2];
  for (int side = 0; side < 2; ++side) {
    const TraceDirectory& t = side ? b : a;
    if (!t.manifest) continue;
    for (const auto& f : t.manifest->files)
      if (f.stage == APR_STAGE_LM_HEAD && !f.shape.empty() && f.shape.back() > 0)
        found[side] = f.shape.back();
  }
  if (found[0] && found[1] && *found[0] != *found[1])
    throw Error("model lm_head: rows of " + std::to_string(*found[0]) + " logits in " +
                a.dir.string() + " but of " + std::to_string(*found[1]) + " in " + b.dir.string() +
                " (manifest shapes differ)");
  return found[0] ? *found[0] : found[1].value_or(0);
}

// "top-1 agrees, KL 5.47e-08" for lm_head rows; empty for other stages.
std::string logit_summary(const DiffMetrics& m) {
  if (!m.logits || m.logits->rows == 0) return "";
  const LogitMetrics& l = *m.logits;
  std::string s = l.rows == 1 ? (l.top1_agree ? "top-1 agrees" : "top-1 differs")
                              : "top-1 agrees in " + std::to_string(l.top1_agree) + "/" +
                                    std::to_string(l.rows) + " rows";
  return s + ", KL " + format_metric(l.kl_div);
}

// The token ids fed at each step a manifest lists (step 0: the prompt).
std::vector<std::vector<int32_t>> fed_tokens(const Manifest& m) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& st : m.steps) out.push_back(st.tokens);
  if (out.empty() && !m.token_ids.empty()) out.push_back(m.token_ids);
  return out;
}

// Rows grouped by (step, layer), in order: the grid's lines.
struct GridLine {
  uint32_t step, layer;
};
std::vector<GridLine> grid_lines(const TraceComparison& c) {
  std::vector<GridLine> lines;
  for (const auto& r : c.rows)
    if (lines.empty() || lines.back().step != r.step || lines.back().layer != r.layer)
      lines.push_back({r.step, r.layer});
  return lines;
}

}  // namespace

std::string row_label(const StageRow& r) {
  return (r.step ? "step " + std::to_string(r.step) + " " : std::string()) +
         (r.layer == APR_LAYER_NONE ? std::string("model") : "layer " + std::to_string(r.layer)) +
         " " + std::string(stage_name(r.stage));
}

std::string pair_status_name(PairStatus s) {
  switch (s) {
    case PairStatus::kMeasured:
      return "measured";
    case PairStatus::kOnlyA:
      return "UNMEASURED (only in A)";
    case PairStatus::kOnlyB:
      return "UNMEASURED (only in B)";
    case PairStatus::kNeither:
      return "UNMEASURED (listed but missing on both sides)";
  }
  return "?";
}

TraceComparison compare_directories(const TraceDirectory& a, const TraceDirectory& b,
                                    double min_cosine) {
  return compare_directories(a, b, Thresholds{min_cosine, kDefaultMaxNmse});
}

TraceComparison compare_directories(const TraceDirectory& a, const TraceDirectory& b,
                                    const Thresholds& thresholds) {
  if (a.manifest && b.manifest && !a.manifest->token_ids.empty() &&
      !b.manifest->token_ids.empty() && a.manifest->token_ids != b.manifest->token_ids)
    throw Error("the traces in " + a.dir.string() + " and " + b.dir.string() +
                " were made from different token ids; trace both with the same prompt");
  if (a.manifest && b.manifest) {
    const auto fa = fed_tokens(*a.manifest), fb = fed_tokens(*b.manifest);
    for (size_t k = 1; k < std::min(fa.size(), fb.size()); ++k)
      if (fa[k] != fb[k])
        throw Error("the traces in " + a.dir.string() + " and " + b.dir.string() +
                    " fed different tokens at decode step " + std::to_string(k) + " (" +
                    std::to_string(fa[k].front()) + " and " + std::to_string(fb[k].front()) +
                    "); trace B with --step-tokens set to A's tokens");
  }
  TraceComparison c;
  c.dir_a = a.dir.string();
  c.dir_b = b.dir.string();
  c.min_cosine = thresholds.min_cosine;
  c.max_nmse = thresholds.max_nmse;

  for (const TraceDirectory* t : {&a, &b}) {
    const std::string side = t == &a ? "A" : "B";
    if (!t->manifest && !t->files.empty())
      c.notes.push_back(side + " (" + t->dir.string() +
                        ") has stage files but no manifest.json (an interrupted run, or another "
                        "tool's tree): its stages were found by scanning the directory, and "
                        "stages missing there are UNMEASURED");
    if (!t->missing.empty())
      c.notes.push_back(side + " (" + t->dir.string() + "): " + std::to_string(t->missing.size()) +
                        " file(s) listed in manifest.json are missing, e.g. " +
                        t->missing.front().path.filename().string() + " of layer " +
                        format_layer(t->missing.front().layer) + "; they are UNMEASURED");
  }
  if (!a.manifest && !b.manifest)
    c.notes.push_back(
        "neither directory has a manifest.json: only stages present on one side "
        "or both are known, so a stage missing from both cannot be noticed");

  // Every (step, layer, stage) either side has or lists; the file pointers are the present ones.
  using Key = std::pair<uint32_t, uint64_t>;
  auto key = [](const TraceFile& f) { return Key(f.step, forward_rank(f.layer, f.stage)); };
  std::map<Key, std::pair<const TraceFile*, const TraceFile*>> pairs;
  std::map<Key, const TraceFile*> listed;
  for (const auto& f : a.files) pairs[key(f)].first = &f;
  for (const auto& f : b.files) pairs[key(f)].second = &f;
  for (const auto* missing : {&a.missing, &b.missing})
    for (const auto& f : *missing) {
      pairs[key(f)];
      listed[key(f)] = &f;
    }

  std::optional<size_t> last_measured;
  for (const auto& [rank, pair] : pairs) {
    const TraceFile* fa = pair.first;
    const TraceFile* fb = pair.second;
    const TraceFile* any = fa ? fa : fb ? fb : listed.at(rank);
    StageRow row;
    row.step = any->step;
    row.layer = any->layer;
    row.stage = any->stage;
    if (!fa && !fb) {
      row.status = PairStatus::kNeither;
    } else if (fa && fb) {
      FileDiff d;
      try {
        const bool logits = row.stage == APR_STAGE_LM_HEAD;
        d = compare_files(fa->path, fb->path, 0,
                          logits ? std::optional(logit_row_length(a, b)) : std::nullopt);
      } catch (const Error& e) {
        const std::string what = e.what();
        const bool count = what.find("element count mismatch") != std::string::npos;
        throw Error(row_label(row) + ": " + what +
                    (count ? " (were both sides traced from the same tokens?)" : ""));
      }
      row.metrics = d.metrics;
      ++c.measured;
      if (!row.metrics.passes(thresholds)) {
        ++c.below;
        if (!c.first_divergence) c.first_divergence = Divergence{c.rows.size(), last_measured};
      }
      last_measured = c.rows.size();
    } else {
      row.status = fa ? PairStatus::kOnlyA : PairStatus::kOnlyB;
    }
    c.rows.push_back(row);
  }
  if (c.measured == 0)
    throw Error("no stage file is present in both " + c.dir_a + " and " + c.dir_b);
  return c;
}

std::string comparison_list_text(const TraceComparison& c) {
  const Thresholds t = c.thresholds();
  std::string s = "a: " + c.dir_a + "\nb: " + c.dir_b + "\n";
  s += pad("layer", 7) + pad("stage", 20) + pad("cosine", 12) + pad("nmse", 11) +
       pad("max|a-b|", 11) + pad("rms(a-b)", 11) + pad("NaN a/b", 10) + "\n";
  for (const auto& r : c.rows) {
    const std::string where =
        r.step ? "s" + std::to_string(r.step) + ":" + format_layer(r.layer) : format_layer(r.layer);
    s += pad(where, 7) + pad(std::string(stage_name(r.stage)), 20);
    if (r.status != PairStatus::kMeasured) {
      s += pair_status_name(r.status) + "\n";
      continue;
    }
    const DiffMetrics& m = r.metrics;
    std::string line = pad(format_cosine(m.cosine_sim), 12) + pad(format_metric(m.nmse), 11) +
                       pad(fmt("%.4g", m.max_abs_diff), 11) + pad(fmt("%.4g", m.rms_diff), 11) +
                       pad(std::to_string(m.nan_a) + "/" + std::to_string(m.nan_b), 10);
    if (!m.passes(t)) line += "DIVERGED: " + failure_reasons(m, t) + "  ";
    line += logit_summary(m);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    s += line + "\n";
  }
  s += divergence_summary(c);
  return s;
}

std::string comparison_grid_text(const TraceComparison& c) {
  std::array<bool, kStageCount> used{};
  for (const auto& r : c.rows) used[r.stage] = true;
  const std::vector<GridLine> lines = grid_lines(c);
  // A decode step whose every stage was measured and agrees is summed up in one line.
  std::map<uint32_t, std::pair<size_t, bool>> steps;  // step -> (rows, every one agrees)
  for (const auto& r : c.rows) {
    auto& [n, clean] = steps.try_emplace(r.step, 0, true).first->second;
    ++n;
    clean = clean && r.status == PairStatus::kMeasured && r.metrics.passes(c.thresholds());
  }
  constexpr size_t kCell = 10;
  const size_t label = steps.size() > 1 ? 9 : 7;
  std::string s = pad("", label);
  for (apr_stage st : stages_in_forward_order())
    if (used[st]) s += pad(kShortNames[st], kCell);
  s += "\n";
  size_t i = 0;
  for (size_t li = 0; li < lines.size(); ++li) {
    const auto [step, layer] = lines[li];
    const auto [n_rows, clean] = steps.at(step);
    if (step > 0 && clean) {  // one line for the whole step
      if (li == 0 || lines[li - 1].step != step)
        s += pad("s" + std::to_string(step), label) + "every stage agrees (" +
             std::to_string(n_rows) + " measured)\n";
      while (i < c.rows.size() && c.rows[i].step == step && c.rows[i].layer == layer) ++i;
      continue;
    }
    const std::string name = layer == APR_LAYER_NONE ? std::string("model") : std::to_string(layer);
    s += pad(step ? "s" + std::to_string(step) + ":" + name : name, label);
    for (apr_stage st : stages_in_forward_order()) {
      if (!used[st]) continue;
      std::string cell = ".";
      if (i < c.rows.size() && c.rows[i].step == step && c.rows[i].layer == layer &&
          c.rows[i].stage == st) {
        const StageRow& r = c.rows[i];
        if (r.status != PairStatus::kMeasured) {
          cell = r.status == PairStatus::kOnlyA   ? "only-A"
                 : r.status == PairStatus::kOnlyB ? "only-B"
                                                  : "missing";
        } else {
          cell = r.metrics.nonfinite_mismatch ? "NaN" : format_cosine(r.metrics.cosine_sim);
          if (c.first_divergence && c.first_divergence->row == i)
            cell += "*";
          else if (!r.metrics.passes(c.thresholds()))
            cell += "!";
        }
        ++i;
      }
      s += pad(cell, kCell);
    }
    s += "\n";
  }
  s += "cells: cosine similarity; * first diverging stage (cosine < " +
       format_threshold(c.min_cosine) + ", NMSE > " + format_threshold(c.max_nmse) +
       " or NaN/inf on one side only), ! later ones; only-A/only-B/missing: UNMEASURED; . not "
       "traced";
  if (steps.size() > 1) s += "; sK:L is layer L of decode step K";
  return s + "\n";
}

std::string divergence_summary(const TraceComparison& c) {
  const Thresholds t = c.thresholds();
  const size_t unmeasured = c.unmeasured();
  const std::string rule = "cosine >= " + format_threshold(t.min_cosine) +
                           " and NMSE <= " + format_threshold(t.max_nmse);
  std::string tail = " (" + std::to_string(c.measured) + " stages measured, " +
                     std::to_string(c.below) + " diverged, " + std::to_string(unmeasured) +
                     " unmeasured)\n";
  if (!c.first_divergence && unmeasured > 0)
    return "incomplete: no measured stage is below " + format_threshold(t.min_cosine) + ", but " +
           std::to_string(unmeasured) +
           " stage(s) are UNMEASURED, so no verdict; every measured stage has " + rule + tail;
  if (!c.first_divergence) return "no divergence: every measured stage has " + rule + tail;
  const StageRow& r = c.rows[c.first_divergence->row];
  const DiffMetrics& m = r.metrics;
  // The failing tests with their values, then the other metrics for context.
  std::vector<std::string> held;
  if (!m.cosine_fails(t)) held.push_back("cosine " + format_cosine(m.cosine_sim));
  if (!m.nmse_fails(t)) held.push_back("NMSE " + format_metric_against(m.nmse, t.max_nmse));
  if (!logit_summary(m).empty()) held.push_back(logit_summary(m));
  std::string s = "first divergence: " + row_label(r) + ", " + failure_reasons(m, t);
  if (!held.empty()) {
    s += " (";
    for (size_t i = 0; i < held.size(); ++i) s += (i ? "; " : "") + held[i];
    s += ")";
  }
  if (c.first_divergence->previous_row) {
    const StageRow& p = c.rows[*c.first_divergence->previous_row];
    s += "; stage before it: " + row_label(p) + ", cosine " + format_cosine(p.metrics.cosine_sim) +
         ", NMSE " + format_metric(p.metrics.nmse);
  } else {
    s += "; it is the first stage measured";
  }
  size_t unmeasured_before = 0;
  for (size_t i = 0; i < c.first_divergence->row; ++i)
    if (c.rows[i].status != PairStatus::kMeasured) ++unmeasured_before;
  if (unmeasured_before)
    s += "; " + std::to_string(unmeasured_before) +
         " earlier stage(s) are UNMEASURED, so an earlier divergence is not ruled out";
  return s + tail;
}

std::string comparison_json(const TraceComparison& c, const std::string& schema,
                            const std::vector<std::pair<std::string, std::string>>& extra) {
  using nlohmann::json;
  const Thresholds t = c.thresholds();
  auto layer_json = [](uint32_t l) { return l == APR_LAYER_NONE ? json(nullptr) : json(l); };
  auto add_logits = [](json& j, const DiffMetrics& m) {
    if (!m.logits) return;
    j["logit_rows"] = m.logits->rows;
    j["top1_agree"] = m.logits->top1_agree_fraction();
    j["kl_div"] = m.logits->kl_div;
  };
  auto row_json = [&](const StageRow& r) {
    json j = {{"step", r.step},
              {"layer", layer_json(r.layer)},
              {"stage", std::string(stage_name(r.stage))},
              {"status", r.status == PairStatus::kMeasured ? "measured" : "unmeasured"}};
    if (r.status != PairStatus::kMeasured) {
      j["present_in"] = r.status == PairStatus::kOnlyA   ? json("a")
                        : r.status == PairStatus::kOnlyB ? json("b")
                                                         : json(nullptr);
      return j;
    }
    const DiffMetrics& m = r.metrics;
    j["dim_product"] = m.count;
    j["cosine_sim"] = m.cosine_sim;
    j["nmse"] = m.nmse;  // +inf (null) only when A is all zero and B is not
    j["rel_l2"] = m.rel_l2;
    j["max_abs_diff"] = m.max_abs_diff;
    j["max_abs_diff_index"] = m.max_abs_diff_index;
    j["rms_diff"] = m.rms_diff;
    j["nan_count_a"] = m.nan_a;
    j["nan_count_b"] = m.nan_b;
    j["nonfinite_mismatch"] = m.nonfinite_mismatch;
    add_logits(j, m);
    j["below_threshold"] = !m.passes(t);
    return j;
  };
  json j = {{"schema", schema},
            {"dir_a", c.dir_a},
            {"dir_b", c.dir_b},
            {"min_cosine", c.min_cosine},
            {"max_nmse", c.max_nmse},  // null when inf (NMSE left out of the verdict)
            {"measured", c.measured},
            {"below", c.below},
            {"unmeasured", c.unmeasured()},
            {"complete", c.unmeasured() == 0},
            {"notes", c.notes}};
  for (const auto& [k, v] : extra) j[k] = v;
  json rows = json::array();
  for (const auto& r : c.rows) rows.push_back(row_json(r));
  j["rows"] = rows;
  if (c.first_divergence) {
    const StageRow& r = c.rows[c.first_divergence->row];
    const DiffMetrics& m = r.metrics;
    json failed = json::array();
    if (m.cosine_fails(t)) failed.push_back("cosine");
    if (m.nmse_fails(t)) failed.push_back("nmse");
    if (m.nonfinite_mismatch) failed.push_back("nonfinite");
    json d = {{"step", r.step},
              {"layer", layer_json(r.layer)},
              {"stage", std::string(stage_name(r.stage))},
              {"cosine_sim", m.cosine_sim},
              {"nmse", m.nmse},
              {"max_abs_diff", m.max_abs_diff},
              {"rel_l2", m.rel_l2},
              {"nonfinite_mismatch", m.nonfinite_mismatch},
              {"failed", failed}};
    add_logits(d, m);
    if (c.first_divergence->previous_row) {
      const StageRow& p = c.rows[*c.first_divergence->previous_row];
      d["previous"] = {{"step", p.step},
                       {"layer", layer_json(p.layer)},
                       {"stage", std::string(stage_name(p.stage))},
                       {"cosine_sim", p.metrics.cosine_sim},
                       {"nmse", p.metrics.nmse},
                       {"max_abs_diff", p.metrics.max_abs_diff},
                       {"rel_l2", p.metrics.rel_l2}};
    } else {
      d["previous"] = nullptr;
    }
    j["first_divergence"] = d;
  } else {
    j["first_divergence"] = nullptr;
  }
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace apr::trace
