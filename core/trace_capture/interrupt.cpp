// SPDX-License-Identifier: MIT
#include "trace_capture/interrupt.hpp"

#include <csignal>
#include <cstring>
#include <string>

#include "common/error.hpp"

namespace apr::trace {

namespace {

volatile std::sig_atomic_t g_signal = 0;
struct sigaction g_old_int {
}, g_old_term{};

void on_signal(int sig) {
  if (g_signal != 0) {
    // Asked twice: stop waiting for the forward pass and die the usual way.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_signal = sig;
}

}  // namespace

InterruptGuard::InterruptGuard() {
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

InterruptGuard::~InterruptGuard() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

int interrupt_signal() {
  return g_signal;
}

void throw_if_interrupted() {
  const int sig = g_signal;
  if (sig == 0) return;
  throw Error(std::string("interrupted by ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
              "; the partial trace was removed");
}

}  // namespace apr::trace
