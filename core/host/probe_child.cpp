// SPDX-License-Identifier: MIT
// apr-plugin-probe PLUGIN.so: loads one plugin file, runs the host's start-up sequence on it and
// reports to the host on file descriptor 3, one line per step:
//   phase NAME        before each step, so the host can say where a crash or hang happened
//   memory BYTES      from the crash handler, when the process was near its memory limit
//   report JSON       the ProbeReport, last
// It runs in a child of apr with a time and memory limit (core/host/subprocess.hpp): whatever the
// plugin does here cannot harm the host. Not meant to be run by hand.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.hpp"
#include "host/plugin_loader.hpp"
#include "host/probe_report.hpp"

namespace {

constexpr int kReportFd = 3;
rlim_t g_data_limit = RLIM_INFINITY;

void write_all(const char* data, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(kReportFd, data, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}

void write_line(const std::string& line) {
  const std::string l = line + "\n";
  write_all(l.data(), l.size());
}

// Async-signal-safe: reads the data segment size from /proc/self/statm and says so when it is
// close to RLIMIT_DATA, so the host can tell a memory flood from an ordinary crash.
void on_fatal_signal(int sig) {
  if (g_data_limit != RLIM_INFINITY) {
    char buf[256];
    const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      const ssize_t n = ::read(fd, buf, sizeof buf - 1);
      ::close(fd);
      if (n > 0) {
        buf[n] = '\0';
        // Fields: size resident shared text lib data dt (pages); data is the sixth.
        unsigned long long field[7] = {0};
        int f = 0;
        for (char* p = buf; *p && f < 7; ++f) {
          unsigned long long v = 0;
          while (*p >= '0' && *p <= '9') v = v * 10 + static_cast<unsigned>(*p++ - '0');
          field[f] = v;
          while (*p == ' ') ++p;
        }
        const unsigned long long bytes =
            field[5] * static_cast<unsigned long long>(::getpagesize());
        if (bytes >= g_data_limit / 10 * 9) {
          char line[64];
          int len = 0;
          char digits[24];
          int d = 0;
          unsigned long long v = bytes;
          do digits[d++] = static_cast<char>('0' + v % 10);
          while ((v /= 10) && d < 24);
          const char* prefix = "memory ";
          while (*prefix) line[len++] = *prefix++;
          while (d) line[len++] = digits[--d];
          line[len++] = '\n';
          write_all(line, static_cast<size_t>(len));
        }
      }
    }
  }
  // SA_RESETHAND restored the default action, so this ends the process with the same signal
  // (a signal sent by raise() or kill() would otherwise be taken as handled).
  ::raise(sig);
}

void install_crash_handlers() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_DATA, &lim) == 0) g_data_limit = lim.rlim_cur;
  static char alt_stack[64 * 1024];  // a crash may be a stack overflow
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof alt_stack;
  ::sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_RESETHAND | SA_ONSTACK | SA_NODEFER;
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) ::sigaction(sig, &sa, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || ::fcntl(kReportFd, F_GETFD) < 0) {
    std::fprintf(stderr,
                 "apr-plugin-probe: an internal helper of apr; it probes one plugin for the host "
                 "(usage: apr-plugin-probe PLUGIN.so 3>REPORT)\n");
    return 2;
  }
  auto logger = spdlog::stderr_color_mt("apr-plugin-probe");
  logger->set_pattern("apr-plugin-probe: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::debug);
  install_crash_handlers();

  apr::host::ProbeReport report;
  std::string phase;
  const apr::host::PhaseFn on_phase = [&](const char* name) {
    phase = name;
    write_line(std::string("phase ") + name);
  };
  try {
    auto lib = apr::host::LoadedLibrary::load(argv[1], on_phase);
    report.info = lib->info();
    lib->close(on_phase);  // shutdown and unload must not crash either
    report.usable = true;
    report.phase = "done";
  } catch (const std::exception& e) {
    report.usable = false;
    report.phase = phase;
    report.reason = apr::host::sanitized_message(e.what());
  }
  write_line("report " + apr::host::to_json(report));
  // No exit handlers: anything a plugin registered there is not the host's concern here.
  std::fflush(stderr);
  ::_exit(0);
}
