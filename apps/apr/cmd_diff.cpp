// SPDX-License-Identifier: MIT
// apr diff --values: how far apart two APRT files, or two trace directories, are.
#include <cmath>
#include <filesystem>
#include <iostream>

#include "cli.hpp"
#include "common/error.hpp"
#include "trace_compare/stage_diff.hpp"
#include "trace_compare/trace_compare.hpp"
#include "trace_format/trace_dir.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr diff --values A B [--limit K] [--json] [--min-cosine X] [--max-nmse Y]

A and B are two APRT files (one stage) or two trace directories (every stage, in forward order;
a file on one side only is UNMEASURED). Each pair gets cosine similarity, NMSE (normalised mean
squared error: sum (a-b)^2 / sum a^2, the error's energy relative to A's), relative L2, max and
RMS |a-b|, and for lm_head (logits) top-1 agreement and KL(softmax(a) || softmax(b)). A pair
diverges when its cosine is below X, its NMSE above Y, or a value is NaN/inf on one side only.
Exit status: 0 when every stage was measured and none diverged, 1 when one diverged, 2 on
errors, 3 when none diverged but some stages are UNMEASURED (e.g. a directory without
manifest.json left by an interrupted run).)";

}  // namespace

int cmd_diff(Context&, const std::vector<std::string>& args) {
  std::string a, b;
  int64_t limit = 10;
  double min_cosine = trace::kDefaultMinCosine;
  double max_nmse = trace::kDefaultMaxNmse;
  bool values = false, json = false;
  po::options_description desc("Options");
  auto add = desc.add_options();
  add("a", po::value(&a), "first file or trace directory");
  add("b", po::value(&b), "second file or trace directory");
  add("values", po::bool_switch(&values), "compare tensor values (the only comparison so far)");
  add("limit", po::value(&limit)->default_value(10), "how many largest differences to list");
  add("json", po::bool_switch(&json), "print JSON (apr-stage-diff-v1 for files)");
  add("min-cosine", po::value(&min_cosine)->default_value(trace::kDefaultMinCosine, "0.999"),
      "cosine similarity below which a pair counts as diverged");
  add("max-nmse", po::value(&max_nmse)->default_value(trace::kDefaultMaxNmse, "1e-5"),
      "NMSE (sum (a-b)^2 / sum a^2: the error's energy relative to A's) above which a pair "
      "counts as diverged; it sees a wrong scale, which cosine cannot (b = 1.01 a gives 1e-4, "
      "1.5 a gives 0.25); inf leaves NMSE out of the verdict");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"a", "b"}, kUsage, vm)) return kExitOk;
  if (!values) throw UsageError("say what to compare: apr diff --values A B");
  in_range(limit, "--limit", 0, 1'000'000);
  if (!std::isfinite(min_cosine) || min_cosine < -1 || min_cosine > 1)
    throw UsageError("--min-cosine must be a number in [-1, 1]");
  if (std::isnan(max_nmse) || max_nmse < 0)
    throw UsageError("--max-nmse must be a number >= 0 (inf: no NMSE test)");
  const trace::Thresholds thresholds{min_cosine, max_nmse};

  std::error_code ec;
  const bool dir_a = std::filesystem::is_directory(a, ec);
  const bool dir_b = std::filesystem::is_directory(b, ec);
  if (!std::filesystem::exists(a, ec)) throw Error(a + ": no such file or directory");
  if (!std::filesystem::exists(b, ec)) throw Error(b + ": no such file or directory");
  if (dir_a != dir_b)
    throw Error("compare a file with a file or a directory with a directory: " + a + " is " +
                (dir_a ? "a directory" : "a file") + ", " + b + " is " +
                (dir_b ? "a directory" : "a file"));

  if (!dir_a) {
    // Two lm_head files are logits: one row of them, as a trace writes it.
    const bool logits = std::filesystem::path(a).filename() == "lm_head.bin" &&
                        std::filesystem::path(b).filename() == "lm_head.bin";
    const trace::FileDiff d = trace::compare_files(
        a, b, size_t(limit), logits ? std::optional<uint64_t>(0) : std::nullopt);
    std::cout << (json ? trace::file_diff_json(d) : trace::file_diff_text(d, thresholds));
    return d.metrics.passes(thresholds) ? kExitOk : kExitDiverged;
  }
  const trace::TraceComparison c = trace::compare_directories(
      trace::list_trace_directory(a), trace::list_trace_directory(b), thresholds);
  for (const auto& note : c.notes) std::cerr << "apr: note: " << note << "\n";
  std::cout << (json ? trace::comparison_json(c, "apr-trace-diff-v1", {})
                     : trace::comparison_list_text(c));
  return c.exit_status();
}

}  // namespace apr::cli
