// SPDX-License-Identifier: MIT
// Compares two trace directories stage by stage in forward order and finds the first stage that
// diverges (cosine below --min-cosine, NMSE above --max-nmse, or NaN/inf on one side only): the
// core of `apr diff` on directories and of `apr bisect`.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "trace_compare/stage_diff.hpp"
#include "trace_format/trace_dir.hpp"

namespace apr::trace {

// kNeither: both manifests list the stage (or one lists it and the other side has no manifest)
// but neither file exists.
enum class PairStatus { kMeasured, kOnlyA, kOnlyB, kNeither };

struct StageRow {
  uint32_t step = 0;  // 0: the prompt pass; k: decode step k (trace_format/manifest.hpp)
  uint32_t layer = APR_LAYER_NONE;
  apr_stage stage = 0;
  PairStatus status = PairStatus::kMeasured;
  DiffMetrics metrics;  // only when measured; `metrics.logits` for lm_head
};

struct Divergence {
  size_t row = 0;                      // index into TraceComparison::rows
  std::optional<size_t> previous_row;  // the measured row before it, if any
};

struct TraceComparison {
  std::string dir_a, dir_b;
  double min_cosine = kDefaultMinCosine;
  double max_nmse = kDefaultMaxNmse;
  // Step by step, forward order within each; every (step, layer, stage) present on either side.
  std::vector<StageRow> rows;
  std::optional<Divergence> first_divergence;
  size_t measured = 0;
  size_t below = 0;  // measured rows that diverge (fail the thresholds' rule)
  // Said on stderr: a side without a manifest, files its manifest lists but lacks.
  std::vector<std::string> notes;

  size_t unmeasured() const { return rows.size() - measured; }
  Thresholds thresholds() const { return {min_cosine, max_nmse}; }
  // Exit status of diff and bisect: 1 when a measured stage is below the threshold, else 3 when
  // any stage is UNMEASURED (no verdict can be given for it), else 0.
  int exit_status() const { return below ? 1 : unmeasured() ? 3 : 0; }
};

constexpr int kExitIncomplete = 3;

// Throws apr::Error when a pair's layers or element counts differ, when both manifests record
// token ids that differ (the prompt, or the token fed at a step both list), or when no stage is
// present on both sides. lm_head is compared as rows
// of logits too: a row is the last dimension of its shape in A's manifest (else B's), the whole
// tensor when neither side has a manifest.
TraceComparison compare_directories(const TraceDirectory& a, const TraceDirectory& b,
                                    const Thresholds& thresholds);
// The same with --max-nmse at its default.
TraceComparison compare_directories(const TraceDirectory& a, const TraceDirectory& b,
                                    double min_cosine);

std::string pair_status_name(PairStatus s);

// One row per (step, layer, stage), for `apr diff` on directories.
std::string comparison_list_text(const TraceComparison& c);
// Layers down, stages across, for `apr bisect`; a decode step whose every stage agrees is one
// line, the others a grid of their own.
std::string comparison_grid_text(const TraceComparison& c);
// "layer 3 attn_softmax", "model lm_head", "step 2 layer 0 attention".
std::string row_label(const StageRow& r);
// One line naming the first diverging stage, or saying there is none.
std::string divergence_summary(const TraceComparison& c);
// Schema apr-trace-diff-v1; `extra` entries (backends, model) are merged at the top level.
std::string comparison_json(const TraceComparison& c, const std::string& schema,
                            const std::vector<std::pair<std::string, std::string>>& extra);

}  // namespace apr::trace
