// SPDX-License-Identifier: MIT
// Runs a helper executable in a child process with a time limit and a memory limit, and collects
// what it reports, so code that may crash, hang, exit or flood memory (a plugin under test) can
// never take the calling process down with it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace apr::host {

struct ChildLimits {
  // The child is killed when it writes nothing to its report channel for this long; every write
  // starts the clock again, so a child that reports progress step by step gets this per step.
  std::chrono::milliseconds idle_timeout{5000};
  // RLIMIT_DATA of the child (heap and private writable mappings; address-space reservations,
  // such as a GPU runtime makes, do not count). 0: no limit.
  uint64_t data_limit_bytes = 0;
  // At most this much of the report channel and of stderr is kept.
  size_t max_report_bytes = 1 << 20;
  size_t max_stderr_bytes = 16 << 10;
};

struct ChildResult {
  bool started = false;     // fork and exec succeeded
  std::string start_error;  // why not, when !started
  bool timed_out = false;   // killed by us after idle_timeout
  int exit_code = -1;       // >= 0 when the child exited
  int signal = 0;           // > 0 when a signal ended it
  std::string report;       // everything the child wrote to file descriptor 3
  std::string stderr_tail;  // the last max_stderr_bytes of its stdout and stderr
  bool report_truncated = false;
};

// Runs argv[0] (a path) with argv. The child gets /dev/null as stdin, a pipe as descriptor 3 for
// its report, and stdout and stderr both into a second pipe; it runs in its own process group,
// which is killed as a whole when it ends or times out, and it dumps no core. Thread-safe: several
// children may run at once from different threads.
ChildResult run_child(const std::vector<std::string>& argv, const ChildLimits& limits);

// "SIGSEGV" for SIGSEGV, "signal 77" for what has no name.
std::string signal_name(int sig);

}  // namespace apr::host
