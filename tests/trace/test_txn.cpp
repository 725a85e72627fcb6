// SPDX-License-Identifier: MIT
// TraceTransaction: staging beside the target, atomic replacement, the lock, leftovers.
#include <catch2/catch.hpp>

#include <fstream>

#include "common/error.hpp"
#include "test_support.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/trace_txn.hpp"

using apr::trace::looks_like_trace_directory;
using apr::trace::TraceTransaction;
using apr::trace::testing::ScratchDir;
namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Everything beside the target that belongs to the machinery.
std::vector<std::string> hidden_entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string()[0] == '.') out.push_back(e.path().filename().string());
  return out;
}

}  // namespace

TEST_CASE("a committed trace replaces the old one whole", "[trace][txn]") {
  ScratchDir scratch("txn-commit");
  const fs::path target = scratch.path() / "t";
  write_text(target / "layer-0" / "attn_norm.bin", "old");
  write_text(target / "manifest.json", "old");
  {
    TraceTransaction txn(target);
    CHECK(txn.staging().parent_path() == scratch.path());
    write_text(txn.staging() / "manifest.json", "new");
    // Until commit the old trace is untouched.
    CHECK(read_text(target / "manifest.json") == "old");
    txn.commit();
  }
  CHECK(read_text(target / "manifest.json") == "new");
  CHECK_FALSE(fs::exists(target / "layer-0"));
  CHECK(hidden_entries(scratch.path()).empty());
}

TEST_CASE("an abandoned trace leaves the old one and no temporaries", "[trace][txn]") {
  ScratchDir scratch("txn-abandon");
  const fs::path target = scratch.path() / "t";
  write_text(target / "manifest.json", "old");
  {
    TraceTransaction txn(target);
    write_text(txn.staging() / "manifest.json", "new");
  }
  CHECK(read_text(target / "manifest.json") == "old");
  CHECK(hidden_entries(scratch.path()).empty());
  {
    TraceTransaction first(target);  // a first trace that dies: no target at all afterwards
  }
  fs::remove_all(target);
  { TraceTransaction txn(target); }
  CHECK_FALSE(fs::exists(target));
}

TEST_CASE("a second trace of the same target fails while the first holds it", "[trace][txn]") {
  ScratchDir scratch("txn-lock");
  const fs::path target = scratch.path() / "t";
  TraceTransaction first(target);
  CHECK_THROWS_WITH(TraceTransaction(target), "another trace is writing " + target.string());
  // Another target in the same directory is independent.
  TraceTransaction other(scratch.path() / "u");
  other.commit();
  first.commit();
  CHECK(fs::is_directory(target));
}

TEST_CASE("leftovers of killed runs are removed and reported", "[trace][txn]") {
  ScratchDir scratch("txn-stale");
  const fs::path target = scratch.path() / "t";
  const fs::path stale = scratch.path() / ".t.trace-tmp-dead01";
  write_text(stale / "layer-0" / "embedding.bin", "partial");
  write_text(scratch.path() / ".t.trace-lock", "");  // a lock file nobody holds
  write_text(scratch.path() / ".other.trace-tmp-x" / "f", "not ours");
  TraceTransaction txn(target);
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(scratch.path() / ".other.trace-tmp-x"));
  REQUIRE(txn.notes().size() == 1);
  CHECK(txn.notes()[0] == "removed " + stale.string() + " left by an interrupted trace");
}

TEST_CASE("only trace directories may be replaced", "[trace][txn]") {
  ScratchDir scratch("txn-guard");
  const fs::path target = scratch.path() / "t";
  fs::create_directories(target);
  CHECK(looks_like_trace_directory(target));  // empty
  write_text(target / "lm_head.bin", "");
  write_text(target / "layer-3" / "ffn_up.bin", "");
  write_text(target / "layer-3" / ".ffn_up.bin.tmp-abc123", "");
  write_text(target / "manifest.json", "");
  CHECK(looks_like_trace_directory(target));
  write_text(target / "layer-3" / "notes.txt", "");
  CHECK_FALSE(looks_like_trace_directory(target));
  CHECK_THROWS_WITH(TraceTransaction(target), Catch::Contains("holds files that are not part"));
  CHECK(fs::exists(target / "layer-3" / "notes.txt"));
  CHECK(hidden_entries(scratch.path()).empty());

  write_text(scratch.path() / "file", "x");
  CHECK_THROWS_WITH(TraceTransaction(scratch.path() / "file"),
                    Catch::Contains("exists and is not a directory"));
  CHECK_THROWS_WITH(TraceTransaction(scratch.path() / "."), Catch::Contains("not '.' or '..'"));
}
