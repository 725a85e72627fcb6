// SPDX-License-Identifier: MIT
// Makes writing a trace directory all-or-nothing. A trace is written into a fresh hidden
// directory beside the target (".NAME.trace-tmp-XXXXXX") and only swapped into place, with one
// atomic rename, once every file and the manifest are on disk. A lock file beside the target
// (".NAME.trace-lock", flock) keeps two traces from writing the same target at once; whoever
// holds it knows that any other ".NAME.trace-tmp-*" is left over from a killed run and removes it.
//
// So a reader of NAME sees the previous complete trace or the new complete one, never a mix, and
// a run that dies at any point leaves NAME as it was.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace apr::trace {

class TraceTransaction {
 public:
  // Takes the lock, removes stale temporaries of earlier killed runs, and creates the staging
  // directory. Throws apr::Error "another trace is writing TARGET" when the lock is held, and
  // when TARGET exists but is not a trace directory (so a mistyped --save-tensor-dir can never
  // replace unrelated files).
  explicit TraceTransaction(std::filesystem::path target);
  // Without commit(): removes the staging directory. Always releases the lock.
  ~TraceTransaction();
  TraceTransaction(const TraceTransaction&) = delete;
  TraceTransaction& operator=(const TraceTransaction&) = delete;

  const std::filesystem::path& target() const { return target_; }
  // Where the files go until commit().
  const std::filesystem::path& staging() const { return staging_; }
  // Puts the staging directory in place of the target (replacing an earlier trace atomically)
  // and removes the earlier one.
  void commit();
  // Things worth telling the user, e.g. a removed leftover of an interrupted run.
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  void lock();
  void remove_stale();

  std::filesystem::path target_;
  std::filesystem::path lock_path_;
  std::filesystem::path staging_;
  int lock_fd_ = -1;
  bool committed_ = false;
  std::vector<std::string> notes_;
};

// True when `dir` holds nothing but what apr or aprender write into a trace directory
// (manifest.json, <stage>.bin, layer-N/ with .bin files, and temporaries of those), or is empty.
bool looks_like_trace_directory(const std::filesystem::path& dir);

}  // namespace apr::trace
