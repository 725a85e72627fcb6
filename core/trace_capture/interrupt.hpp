// SPDX-License-Identifier: MIT
// SIGINT/SIGTERM while a trace is being written: instead of dying with a half-written temporary
// directory, the run notes the signal, the trace sink aborts the forward pass at its next
// tensor, and the transaction removes what was written. A second signal kills as usual (the
// next trace of that directory removes the leftover).
#pragma once

namespace apr::trace {

// Installs the handlers for its lifetime and restores the previous ones afterwards. Not nested.
class InterruptGuard {
 public:
  InterruptGuard();
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;
};

// The signal number received while a guard was active, or 0.
int interrupt_signal();

// Throws apr::Error("interrupted by SIGINT") when a signal arrived.
void throw_if_interrupted();

}  // namespace apr::trace
