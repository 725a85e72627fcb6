// SPDX-License-Identifier: MIT
// How far apart two traces of the same stage are: cosine similarity, normalised MSE, relative
// L2, the largest and RMS difference, the elements that differ most, and for logits (lm_head)
// top-1 agreement and KL divergence; and the verdict rule that says whether a pair diverged.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace apr::trace {

// Defaults of --min-cosine and --max-nmse. The NMSE default sits 20x above the largest NMSE
// measured between honest backends (4.9e-7: SmolLM2 decode steps, cpu with 16-bit activations
// against Vulkan) and catches any constant scale error of more than 0.32 % (x 1.0032, x 0.9968);
// docs/TRACING.md has the measurements and the commands that made them.
constexpr double kDefaultMinCosine = 0.999;
constexpr double kDefaultMaxNmse = 1e-5;

// A measured pair diverges when any of: cosine < min_cosine, nmse > max_nmse, or an element is
// finite on one side only. max_nmse = +inf leaves NMSE out of the verdict.
struct Thresholds {
  double min_cosine = kDefaultMinCosine;
  double max_nmse = kDefaultMaxNmse;
};

struct ElementDiff {
  uint64_t index = 0;
  float a = 0;
  float b = 0;
  double abs_diff = 0;
};

// Metrics of logits, row by row (a row is one token's n_vocab logits), over the rows whose every
// element is finite on both sides. Accumulated in f64.
struct LogitMetrics {
  uint64_t row_length = 0;
  uint64_t rows = 0;        // rows compared
  uint64_t top1_agree = 0;  // rows whose argmax (first index of the largest logit) is the same
  uint64_t argmax_a = 0;    // of the last row compared (a trace's lm_head holds one row)
  uint64_t argmax_b = 0;
  double kl_div = 0;      // mean over rows of KL(softmax(a) || softmax(b)), in nats, >= 0
  double kl_div_max = 0;  // the largest row's

  // Fraction of rows whose top-1 agrees: 1 when all do (and when no row was compared).
  double top1_agree_fraction() const { return rows ? double(top1_agree) / double(rows) : 1.0; }
};

struct DiffMetrics {
  uint64_t count = 0;
  // Over elements that are finite on both sides; accumulated in f64.
  double max_abs_diff = 0;
  uint64_t max_abs_diff_index = 0;
  double rms_diff = 0;
  double cosine_sim = 0;  // 0 when either side's norm is 0
  // Normalised MSE: sum (a-b)^2 / sum a^2, A being the reference side. Sees scale, which cosine
  // does not (b = 1.5 a: cosine 1, nmse 0.25). 0 when both sums are 0, +inf when only A's is.
  double nmse = 0;
  double rel_l2 = 0;             // ||a-b|| / ||a|| = sqrt(nmse)
  std::vector<ElementDiff> top;  // largest |a - b| first, ties by index
  uint64_t nan_a = 0;
  uint64_t nan_b = 0;
  // Elements where the two sides disagree on being finite (NaN against a number, +inf against
  // -inf): any of them makes the pair diverge whatever the cosine says.
  uint64_t nonfinite_mismatch = 0;
  std::optional<LogitMetrics> logits;  // lm_head only

  bool cosine_fails(const Thresholds& t) const { return cosine_sim < t.min_cosine; }
  bool nmse_fails(const Thresholds& t) const { return nmse > t.max_nmse; }
  bool passes(const Thresholds& t) const {
    return nonfinite_mismatch == 0 && !cosine_fails(t) && !nmse_fails(t);
  }
};

// Throws apr::Error when the spans differ in length. Leaves `logits` empty.
DiffMetrics compare_values(std::span<const float> a, std::span<const float> b, size_t top_k);

// Top-1 agreement and KL(softmax(a) || softmax(b)) per row of `row_length` logits (0: the whole
// span is one row). Rows holding a non-finite element on either side are left out. Throws
// apr::Error when the spans differ in length or row_length does not divide it.
LogitMetrics compare_logits(std::span<const float> a, std::span<const float> b,
                            uint64_t row_length);

struct FileDiff {
  std::string path_a, path_b;
  uint32_t layer = 0;
  DiffMetrics metrics;
};

// Reads two APRT files and compares them; throws apr::Error when their layers or element
// counts differ. With `logit_row_length` (0: the whole tensor is one row) the files are logits
// and DiffMetrics::logits is filled.
FileDiff compare_files(const std::filesystem::path& a, const std::filesystem::path& b, size_t top_k,
                       std::optional<uint64_t> logit_row_length = std::nullopt);

// Schema apr-stage-diff-v1.
std::string file_diff_json(const FileDiff& d);
std::string file_diff_text(const FileDiff& d, const Thresholds& t);

// What made a pair diverge, e.g. "NMSE 0.25 > 1e-05" or "cosine 0.391064 < 0.999, 3 NaN/inf on
// one side only"; empty when it passes.
std::string failure_reasons(const DiffMetrics& m, const Thresholds& t);

// "0.999998" style, "-" for unmeasured, used by every table.
std::string format_cosine(double c);
// Nine or more decimals, never rounded onto +-1 (single-stage reports).
std::string format_cosine_precise(double c);
// NMSE, relative L2, KL: three significant digits ("2.63e-07", "0.25", "inf").
std::string format_metric(double x);
// `value` with as many digits as it takes to read on the same side of `threshold` as it is
// (1.00004e-05 against 1e-05, never "1e-05 > 1e-05").
std::string format_metric_against(double value, double threshold);
// A threshold such as --min-cosine in the shortest form that reads back exactly (0.9999995).
std::string format_threshold(double x);
std::string format_layer(uint32_t layer);

}  // namespace apr::trace
