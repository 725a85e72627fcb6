# SPDX-License-Identifier: MIT
"""`apr chat` on a pseudo-terminal, as a person uses it: two turns where the second prefills only
its own tokens (the history stays in the KV cache), Ctrl-C that stops an answer but not the
program, and Ctrl-D that quits with status 0."""

import os
import pty
import re
import select
import signal
import time

import pytest


class Terminal:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.execv(argv[0], argv)
        self.buffer = b""

    def read_until(self, pattern: bytes, timeout: float) -> bytes:
        """Everything read up to and including `pattern` (a regex); fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.buffer)
            if m:
                out, self.buffer = self.buffer[: m.end()], self.buffer[m.end():]
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout} s; got {self.buffer[-3000:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"apr ended before {pattern!r}; got {self.buffer[-3000:]!r}")
                self.buffer += chunk

    def send(self, data: bytes):
        os.write(self.fd, data)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.read(self.fd, 4096)  # drain so the child never blocks on output
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("apr chat did not exit")


PROMPT = rb"\n> $"
PREFILL = rb"prefilling (\d+) new tokens after (\d+) cached"


def test_chat_on_a_terminal(apr_bin, smollm2):
    term = Terminal([str(apr_bin), "-v", "--backend=cpu", "chat", str(smollm2), "--temperature",
                     "0", "-c", "2048"])
    try:
        term.read_until(rb"> $", 120)
        term.send(b"What is the capital of France?\n")
        first = term.read_until(PROMPT, 120)
        assert b"Paris" in first, first
        new1, cached1 = map(int, re.search(PREFILL, first).groups())
        assert cached1 == 0 and new1 > 20

        # The second turn prefills only itself: far fewer tokens than the conversation so far.
        term.send(b"And the capital of Italy?\n")
        second = term.read_until(PROMPT, 120)
        assert b"Rome" in second, second
        new2, cached2 = map(int, re.search(PREFILL, second).groups())
        assert cached2 >= new1 + 3 and new2 < 20, (new2, cached2)

        # Ctrl-C while an answer streams ends that answer; the program waits for the next line.
        term.send(b"Write a very long story about a dragon who learns to cook.\n")
        term.read_until(rb"prefilling[^\n]*\n", 60)
        term.read_until(rb"[A-Za-z]{3,}\W+[A-Za-z]{3,}\W+[A-Za-z]{3,}", 60)  # some words out
        term.send(b"\x03")
        stopped = term.read_until(PROMPT, 60)
        assert b"[stopped]" in stopped, stopped

        # Still alive and answering, history intact.
        term.send(b"What is the capital of France? One word.\n")
        assert b"Paris" in term.read_until(PROMPT, 120)

        # Ctrl-C at the prompt does not quit either; Ctrl-D does, with status 0.
        term.send(b"\x03")
        term.read_until(rb"Ctrl-D quits\)\r?\n> $", 30)
        term.send(b"\x04")
        assert term.wait(30) == 0
    finally:
        try:
            os.kill(term.pid, signal.SIGKILL)
            os.waitpid(term.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
