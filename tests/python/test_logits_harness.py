# SPDX-License-Identifier: MIT
"""test_model_logits.py and test_trace_cli.py must pass a correct engine and fail a wrong one:
run them against fake_apr.py (the reference behind apr's CLI contract) with and without injected
errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CASES = ["qwen2-tiny-F32", "llama-tiny-Q4_K_M", "llama-small-Q4_K"]


def fake_apr(tmp_path) -> str:
    """An executable that runs fake_apr.py under this interpreter (the venv's, with numpy), never
    through a shebang that would find the system Python."""
    wrapper = tmp_path / "fake-apr"
    script = HERE / "fake_apr.py"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def run_suite(tmp_path, **env_extra):
    env = dict(os.environ, APR_BIN=fake_apr(tmp_path), **env_extra)
    suite = HERE / "test_model_logits.py"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "--basetemp", str(tmp_path / "run")]  # fmt: skip
    cmd += [f"{suite}::test_logits_match_reference[{case}]" for case in CASES]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_correct_engine_passes(tmp_path):
    proc = run_suite(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "3 passed" in proc.stdout


@pytest.mark.parametrize("env", [{"FAKE_APR_NOISE": "0.01"}, {"FAKE_APR_WRONG_TOKEN": "1"}])
def test_wrong_engine_fails(tmp_path, env):
    proc = run_suite(tmp_path, **env)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "3 failed" in proc.stdout


def run_trace_suite(tmp_path, **env_extra):
    env = dict(os.environ, APR_BIN=fake_apr(tmp_path), **env_extra)
    suite = HERE / "test_trace_cli.py"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "--basetemp", str(tmp_path / "run"),
           f"{suite}::test_trace_matches_reference[qwen2-F32]"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_trace_suite_passes_a_correct_trace(tmp_path):
    proc = run_trace_suite(tmp_path)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:]


def test_trace_suite_fails_a_wrong_trace(tmp_path):
    proc = run_trace_suite(tmp_path, FAKE_APR_NOISE="0.01")
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout[-3000:]
