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
    R"(Usage: apr diff --values A B [--limit K] [--json] [--min-cosine X]

A and B are two APRT files (one stage) or two trace directories (every stage, in forward order;
a file on one side only is UNMEASURED). Exit status: 0 when every stage was measured with cosine
similarity >= X, 1 when one is below, 2 on errors, 3 when none is below but some stages are
UNMEASURED (e.g. a directory without manifest.json left by an interrupted run).)";

}  // namespace

int cmd_diff(Context&, const std::vector<std::string>& args) {
  std::string a, b;
  int64_t limit = 10;
  double min_cosine = 0.999;
  bool values = false, json = false;
  po::options_description desc("Options");
  auto add = desc.add_options();
  add("a", po::value(&a), "first file or trace directory");
  add("b", po::value(&b), "second file or trace directory");
  add("values", po::bool_switch(&values), "compare tensor values (the only comparison so far)");
  add("limit", po::value(&limit)->default_value(10), "how many largest differences to list");
  add("json", po::bool_switch(&json), "print JSON (apr-stage-diff-v1 for files)");
  add("min-cosine", po::value(&min_cosine)->default_value(0.999, "0.999"),
      "cosine similarity below which a pair counts as diverged");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"a", "b"}, kUsage, vm)) return kExitOk;
  if (!values) throw UsageError("say what to compare: apr diff --values A B");
  in_range(limit, "--limit", 0, 1'000'000);
  if (!std::isfinite(min_cosine) || min_cosine < -1 || min_cosine > 1)
    throw UsageError("--min-cosine must be a number in [-1, 1]");

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
    const trace::FileDiff d = trace::compare_files(a, b, size_t(limit));
    std::cout << (json ? trace::file_diff_json(d) : trace::file_diff_text(d, min_cosine));
    return d.metrics.passes(min_cosine) ? kExitOk : kExitDiverged;
  }
  const trace::TraceComparison c = trace::compare_directories(
      trace::list_trace_directory(a), trace::list_trace_directory(b), min_cosine);
  for (const auto& note : c.notes) std::cerr << "apr: note: " << note << "\n";
  std::cout << (json ? trace::comparison_json(c, "apr-trace-diff-v1", {})
                     : trace::comparison_list_text(c));
  return c.exit_status();
}

}  // namespace apr::cli
