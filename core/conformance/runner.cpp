// SPDX-License-Identifier: MIT
#include "runner.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <ostream>

#include "check.hpp"

namespace conformance {
namespace {

// The child's verdict travels through a pipe as "P|F|S<message>\n" then one "N<note>\n" per note.
void write_all(int fd, const std::string& text) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n <= 0) return;
    p += n;
    left -= size_t(n);
  }
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// Runs the check in this process; returns the encoded verdict.
std::string run_here(const CheckCase& c) {
  clear_notes();
  std::string verdict;
  try {
    c.fn();
    verdict = "P\n";
  } catch (const CheckFailure& f) {
    verdict = "F" + one_line(f.message) + "\n";
  } catch (const CheckSkipped& s) {
    verdict = "S" + one_line(s.reason) + "\n";
  } catch (const std::exception& e) {
    verdict = "F" + one_line(e.what()) + "\n";
  } catch (...) {
    verdict = "Fan unknown exception\n";
  }
  for (const std::string& n : notes()) verdict += "N" + one_line(n) + "\n";
  return verdict;
}

void decode(const std::string& text, CheckResult& r) {
  size_t pos = 0;
  bool first = true;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    if (first) {
      r.outcome = line[0] == 'P' ? Outcome::Pass : line[0] == 'S' ? Outcome::Skip : Outcome::Fail;
      r.message = line.substr(1);
      first = false;
    } else if (line[0] == 'N') {
      r.notes.push_back(line.substr(1));
    }
  }
  if (first) {
    r.outcome = Outcome::Fail;
    r.message = "the check process ended without a verdict";
  }
}

std::string signal_text(int sig) {
  const char* name = sigabbrev_np(sig);
  return "crashed with signal " + std::to_string(sig) +
         (name ? std::string(" (SIG") + name + ")" : "");
}

CheckResult run_forked(const CheckCase& c, unsigned timeout_s) {
  CheckResult r;
  r.name = c.name;
  int fds[2];
  if (::pipe(fds) != 0) {
    r.message = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    r.message = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return r;
  }
  if (pid == 0) {
    ::close(fds[0]);
    // Whatever the plugin prints must not break the one-line-per-check report.
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    // A crash of the plugin must reach the parent as that signal. Sanitizer runtimes (the ASan
    // build of the test suite) install handlers that would turn it into "exit status 1".
    for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) ::signal(sig, SIG_DFL);
    ::alarm(timeout_s);
    write_all(fds[1], run_here(c));
    ::close(fds[1]);
    ::_exit(0);  // skip static destructors: the plugin was never meant to outlive the check
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      text.append(buf, size_t(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  decode(text, r);
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    r.outcome = Outcome::Fail;
    r.message =
        sig == SIGALRM ? "timed out after " + std::to_string(timeout_s) + " s" : signal_text(sig);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    r.outcome = Outcome::Fail;
    r.message = "the check process exited with status " + std::to_string(WEXITSTATUS(status));
  }
  return r;
}

bool has_tag(const std::string& tags, const std::string& tag) {
  return tags.find(tag) != std::string::npos;
}

}  // namespace

Config& config() {
  static Config c;
  return c;
}

void add_check(const std::string& name, const std::string& tags, void (*fn)()) {
  registry().insert(registry().begin(), CheckCase{name, tags, fn});
}

std::vector<CheckResult> run_checks(const RunOptions& options,
                                    const std::function<void(const CheckResult&)>& on_result) {
  std::vector<CheckResult> results;
  for (const CheckCase& c : registry()) {
    const bool selected = options.include_tag.empty() ? !has_tag(c.tags, "[fault]")
                                                      : has_tag(c.tags, options.include_tag);
    if (!selected) continue;
    const auto t0 = std::chrono::steady_clock::now();
    CheckResult r;
    if (options.fork) {
      r = run_forked(c, options.timeout_s);
    } else {
      r.name = c.name;
      decode(run_here(c), r);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (on_result) on_result(r);
    results.push_back(std::move(r));
  }
  return results;
}

void print_line(std::ostream& out, const CheckResult& r) {
  const char* word = r.outcome == Outcome::Pass   ? "PASS"
                     : r.outcome == Outcome::Skip ? "SKIP"
                                                  : "FAIL";
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f s", r.seconds);
  out << word << "  " << r.name;
  if (!r.message.empty()) out << ": " << r.message;
  out << " (" << secs << ")\n";
  for (const std::string& n : r.notes) out << "      note: " << n << "\n";
}

std::string results_json(const std::vector<CheckResult>& results) {
  nlohmann::json checks = nlohmann::json::array();
  size_t passed = 0, failed = 0, skipped = 0;
  for (const CheckResult& r : results) {
    const char* word = r.outcome == Outcome::Pass   ? "pass"
                       : r.outcome == Outcome::Skip ? "skip"
                                                    : "fail";
    (r.outcome == Outcome::Pass ? passed : r.outcome == Outcome::Skip ? skipped : failed)++;
    checks.push_back({{"name", r.name},
                      {"result", word},
                      {"message", r.message},
                      {"notes", r.notes},
                      {"seconds", r.seconds}});
  }
  nlohmann::json doc = {
      {"plugin", config().plugin_path},
      {"device", config().device},
      {"checks", checks},
      {"summary", {{"passed", passed}, {"failed", failed}, {"skipped", skipped}}}};
  return doc.dump(2);
}

}  // namespace conformance
