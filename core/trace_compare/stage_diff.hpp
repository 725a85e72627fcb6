// SPDX-License-Identifier: MIT
// How far apart two traces of the same stage are: the largest and RMS difference, the cosine
// similarity, and the elements that differ most.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace apr::trace {

struct ElementDiff {
  uint64_t index = 0;
  float a = 0;
  float b = 0;
  double abs_diff = 0;
};

struct DiffMetrics {
  uint64_t count = 0;
  // Over elements that are finite on both sides; accumulated in f64.
  double max_abs_diff = 0;
  uint64_t max_abs_diff_index = 0;
  double rms_diff = 0;
  double cosine_sim = 0;         // 0 when either side's norm is 0
  std::vector<ElementDiff> top;  // largest |a - b| first, ties by index
  uint64_t nan_a = 0;
  uint64_t nan_b = 0;
  // Elements where the two sides disagree on being finite (NaN against a number, +inf against
  // -inf): any of them makes the pair diverge whatever the cosine says.
  uint64_t nonfinite_mismatch = 0;

  bool passes(double min_cosine) const {
    return nonfinite_mismatch == 0 && cosine_sim >= min_cosine;
  }
};

// Throws apr::Error when the spans differ in length.
DiffMetrics compare_values(std::span<const float> a, std::span<const float> b, size_t top_k);

struct FileDiff {
  std::string path_a, path_b;
  uint32_t layer = 0;
  DiffMetrics metrics;
};

// Reads two APRT files and compares them; throws apr::Error when their layers or element
// counts differ.
FileDiff compare_files(const std::filesystem::path& a, const std::filesystem::path& b,
                       size_t top_k);

// Schema apr-stage-diff-v1.
std::string file_diff_json(const FileDiff& d);
std::string file_diff_text(const FileDiff& d, double min_cosine);

// "0.999998" style, "-" for unmeasured, used by every table.
std::string format_cosine(double c);
// Nine or more decimals, never rounded onto +-1 (single-stage reports).
std::string format_cosine_precise(double c);
// A threshold such as --min-cosine in the shortest form that reads back exactly (0.9999995).
std::string format_threshold(double x);
std::string format_layer(uint32_t layer);

}  // namespace apr::trace
