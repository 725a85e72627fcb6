// SPDX-License-Identifier: MIT
#include "trace_compare/trace_compare.hpp"

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
    "embed",   "attn_nrm", "qkv_mm",   "qkv_bias", "q_rope",    "k_rope", "scores",
    "softmax", "attn",     "attn_out", "attn_res", "ffn_nrm",   "gate",   "up",
    "silu",    "swigl",    "ffn_out",  "ffn_res",  "final_nrm", "lm_head"};

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string row_label(const StageRow& r) {
  return (r.layer == APR_LAYER_NONE ? std::string("model") : "layer " + std::to_string(r.layer)) +
         " " + std::string(stage_name(r.stage));
}

}  // namespace

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
  if (a.manifest && b.manifest && !a.manifest->token_ids.empty() &&
      !b.manifest->token_ids.empty() && a.manifest->token_ids != b.manifest->token_ids)
    throw Error("the traces in " + a.dir.string() + " and " + b.dir.string() +
                " were made from different token ids; trace both with the same prompt");
  TraceComparison c;
  c.dir_a = a.dir.string();
  c.dir_b = b.dir.string();
  c.min_cosine = min_cosine;

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

  // Every (layer, stage) either side has or lists; the file pointers are the present ones.
  std::map<uint64_t, std::pair<const TraceFile*, const TraceFile*>> pairs;
  std::map<uint64_t, const TraceFile*> listed;
  for (const auto& f : a.files) pairs[forward_rank(f.layer, f.stage)].first = &f;
  for (const auto& f : b.files) pairs[forward_rank(f.layer, f.stage)].second = &f;
  for (const auto* missing : {&a.missing, &b.missing})
    for (const auto& f : *missing) {
      pairs[forward_rank(f.layer, f.stage)];
      listed[forward_rank(f.layer, f.stage)] = &f;
    }

  std::optional<size_t> last_measured;
  for (const auto& [rank, pair] : pairs) {
    const TraceFile* fa = pair.first;
    const TraceFile* fb = pair.second;
    const TraceFile* any = fa ? fa : fb ? fb : listed.at(rank);
    StageRow row;
    row.layer = any->layer;
    row.stage = any->stage;
    if (!fa && !fb) {
      row.status = PairStatus::kNeither;
    } else if (fa && fb) {
      FileDiff d;
      try {
        d = compare_files(fa->path, fb->path, 0);
      } catch (const Error& e) {
        const std::string what = e.what();
        const bool count = what.find("element count mismatch") != std::string::npos;
        throw Error(row_label(row) + ": " + what +
                    (count ? " (were both sides traced from the same tokens?)" : ""));
      }
      row.metrics = d.metrics;
      ++c.measured;
      if (!row.metrics.passes(min_cosine)) {
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
  std::string s = "a: " + c.dir_a + "\nb: " + c.dir_b + "\n";
  s += pad("layer", 7) + pad("stage", 20) + pad("cosine", 12) + pad("max|a-b|", 13) +
       pad("rms(a-b)", 13) + pad("NaN a/b", 12) + "\n";
  for (const auto& r : c.rows) {
    s += pad(format_layer(r.layer), 7) + pad(std::string(stage_name(r.stage)), 20);
    if (r.status != PairStatus::kMeasured) {
      s += pair_status_name(r.status) + "\n";
      continue;
    }
    const DiffMetrics& m = r.metrics;
    s += pad(format_cosine(m.cosine_sim), 12) + pad(fmt("%.4g", m.max_abs_diff), 13) +
         pad(fmt("%.4g", m.rms_diff), 13) +
         pad(std::to_string(m.nan_a) + "/" + std::to_string(m.nan_b), 12);
    if (!m.passes(c.min_cosine))
      s += m.nonfinite_mismatch ? "BELOW (non-finite mismatch)" : "BELOW";
    s += "\n";
  }
  s += divergence_summary(c);
  return s;
}

std::string comparison_grid_text(const TraceComparison& c) {
  std::array<bool, kStageCount> used{};
  std::vector<uint32_t> layers;
  for (const auto& r : c.rows) {
    used[r.stage] = true;
    if (layers.empty() || layers.back() != r.layer) layers.push_back(r.layer);
  }
  constexpr size_t kCell = 10;
  std::string s = pad("", 7);
  for (apr_stage st : stages_in_forward_order())
    if (used[st]) s += pad(kShortNames[st], kCell);
  s += "\n";
  size_t i = 0;
  for (uint32_t layer : layers) {
    s += pad(layer == APR_LAYER_NONE ? std::string("model") : std::to_string(layer), 7);
    for (apr_stage st : stages_in_forward_order()) {
      if (!used[st]) continue;
      std::string cell = ".";
      if (i < c.rows.size() && c.rows[i].layer == layer && c.rows[i].stage == st) {
        const StageRow& r = c.rows[i];
        if (r.status != PairStatus::kMeasured) {
          cell = r.status == PairStatus::kOnlyA   ? "only-A"
                 : r.status == PairStatus::kOnlyB ? "only-B"
                                                  : "missing";
        } else {
          cell = r.metrics.nonfinite_mismatch ? "NaN" : format_cosine(r.metrics.cosine_sim);
          if (c.first_divergence && c.first_divergence->row == i)
            cell += "*";
          else if (!r.metrics.passes(c.min_cosine))
            cell += "!";
        }
        ++i;
      }
      s += pad(cell, kCell);
    }
    s += "\n";
  }
  s += "cells: cosine similarity; * first stage below " + format_threshold(c.min_cosine) +
       ", ! later ones; only-A/only-B/missing: UNMEASURED; . not traced\n";
  return s;
}

std::string divergence_summary(const TraceComparison& c) {
  const size_t unmeasured = c.unmeasured();
  std::string tail = " (" + std::to_string(c.measured) + " stages measured, " +
                     std::to_string(c.below) + " below " + format_threshold(c.min_cosine) + ", " +
                     std::to_string(unmeasured) + " unmeasured)\n";
  if (!c.first_divergence && unmeasured > 0)
    return "incomplete: no measured stage is below " + format_threshold(c.min_cosine) + ", but " +
           std::to_string(unmeasured) + " stage(s) are UNMEASURED, so no verdict" + tail;
  if (!c.first_divergence)
    return "no divergence: every measured stage has cosine >= " + format_threshold(c.min_cosine) +
           tail;
  const StageRow& r = c.rows[c.first_divergence->row];
  std::string s =
      "first divergence: " + row_label(r) + ", cosine " + format_cosine(r.metrics.cosine_sim);
  if (r.metrics.nonfinite_mismatch)
    s += ", " + std::to_string(r.metrics.nonfinite_mismatch) + " NaN/inf on one side only";
  if (c.first_divergence->previous_row) {
    const StageRow& p = c.rows[*c.first_divergence->previous_row];
    s += "; stage before it: " + row_label(p) + ", cosine " + format_cosine(p.metrics.cosine_sim);
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
  auto layer_json = [](uint32_t l) { return l == APR_LAYER_NONE ? json(nullptr) : json(l); };
  auto row_json = [&](const StageRow& r) {
    json j = {{"layer", layer_json(r.layer)},
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
    j["max_abs_diff"] = m.max_abs_diff;
    j["max_abs_diff_index"] = m.max_abs_diff_index;
    j["rms_diff"] = m.rms_diff;
    j["nan_count_a"] = m.nan_a;
    j["nan_count_b"] = m.nan_b;
    j["nonfinite_mismatch"] = m.nonfinite_mismatch;
    j["below_threshold"] = !m.passes(c.min_cosine);
    return j;
  };
  json j = {{"schema", schema},
            {"dir_a", c.dir_a},
            {"dir_b", c.dir_b},
            {"min_cosine", c.min_cosine},
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
    json d = {{"layer", layer_json(r.layer)},
              {"stage", std::string(stage_name(r.stage))},
              {"cosine_sim", r.metrics.cosine_sim}};
    if (c.first_divergence->previous_row) {
      const StageRow& p = c.rows[*c.first_divergence->previous_row];
      d["previous"] = {{"layer", layer_json(p.layer)},
                       {"stage", std::string(stage_name(p.stage))},
                       {"cosine_sim", p.metrics.cosine_sim}};
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
