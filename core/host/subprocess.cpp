// SPDX-License-Identifier: MIT
#include "host/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace apr::host {
namespace {

using Clock = std::chrono::steady_clock;

// Owns a file descriptor.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

bool make_pipe(Fd& r, Fd& w) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return false;
  r.fd = p[0];
  w.fd = p[1];
  return true;
}

// Between fork and exec only async-signal-safe calls are allowed (other threads may hold locks).
[[noreturn]] void exec_child(char* const* argv, int null_fd, int report_fd, int err_fd,
                             uint64_t data_limit) {
  ::setpgid(0, 0);
  if (data_limit) {
    const rlimit lim{data_limit, data_limit};
    ::setrlimit(RLIMIT_DATA, &lim);
  }
  const rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  // Move the pipe ends above the descriptors about to be overwritten.
  const int r = ::fcntl(report_fd, F_DUPFD_CLOEXEC, 10);
  const int e = ::fcntl(err_fd, F_DUPFD_CLOEXEC, 10);
  if (r < 0 || e < 0) ::_exit(126);
  if (::dup2(null_fd, 0) < 0 || ::dup2(e, 1) < 0 || ::dup2(e, 2) < 0 || ::dup2(r, 3) < 0)
    ::_exit(126);
  // Signals the parent ignores or blocks must not stay so in the child.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::execv(argv[0], argv);
  ::_exit(127);
}

// Appends what is readable; returns false at end of file or on a hard error.
bool drain(int fd, std::string& into, size_t keep, bool keep_tail, bool& truncated) {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      if (into.size() > keep) {
        truncated = true;
        if (keep_tail)
          into.erase(0, into.size() - keep);
        else
          into.resize(keep);
      }
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

}  // namespace

std::string signal_name(int sig) {
  if (const char* abbrev = ::sigabbrev_np(sig)) return std::string("SIG") + abbrev;
  return "signal " + std::to_string(sig);
}

ChildResult run_child(const std::vector<std::string>& argv, const ChildLimits& limits) {
  ChildResult result;
  if (argv.empty()) {
    result.start_error = "no program given";
    return result;
  }
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  Fd report_r, report_w, err_r, err_w;
  Fd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (null_fd.fd < 0 || !make_pipe(report_r, report_w) || !make_pipe(err_r, err_w)) {
    result.start_error = std::string("cannot create pipes: ") + std::strerror(errno);
    return result;
  }
  // Checked here because the child cannot report a failed exec in words.
  if (::access(args[0].c_str(), X_OK) != 0) {
    result.start_error = "cannot execute " + args[0] + ": " + std::strerror(errno);
    return result;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    result.start_error = std::string("fork failed: ") + std::strerror(errno);
    return result;
  }
  if (pid == 0)
    exec_child(cargv.data(), null_fd.fd, report_w.fd, err_w.fd, limits.data_limit_bytes);
  ::setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
  result.started = true;
  report_w.reset();
  err_w.reset();
  ::fcntl(report_r.fd, F_SETFL, O_NONBLOCK);
  ::fcntl(err_r.fd, F_SETFL, O_NONBLOCK);

  bool report_open = true, err_open = true, exited = false, err_truncated = false;
  auto deadline = Clock::now() + limits.idle_timeout;
  for (;;) {
    pollfd fds[2];
    nfds_t n = 0;
    if (report_open) fds[n++] = {report_r.fd, POLLIN, 0};
    if (err_open) fds[n++] = {err_r.fd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    const int wait_ms = static_cast<int>(std::clamp<long long>(left, 0, 20));
    if (n)
      ::poll(fds, n, wait_ms);
    else
      ::usleep(static_cast<useconds_t>(wait_ms) * 1000);
    if (report_open) {
      const size_t before = result.report.size();
      report_open = drain(report_r.fd, result.report, limits.max_report_bytes, false,
                          result.report_truncated);
      if (result.report.size() != before) deadline = Clock::now() + limits.idle_timeout;
    }
    if (err_open)
      err_open = drain(err_r.fd, result.stderr_tail, limits.max_stderr_bytes, true, err_truncated);

    // Noticed without reaping, so the process group id cannot be reused before it is killed.
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      exited = true;
      break;
    }
    if (Clock::now() >= deadline) {
      result.timed_out = true;
      break;
    }
  }
  // Kills the child (on time-out) and anything it started, then reaps it.
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (exited) {  // what it wrote just before it ended
    if (report_open)
      drain(report_r.fd, result.report, limits.max_report_bytes, false, result.report_truncated);
    if (err_open) drain(err_r.fd, result.stderr_tail, limits.max_stderr_bytes, true, err_truncated);
  }
  if (!result.timed_out) {
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace apr::host
