# SPDX-License-Identifier: MIT
"""Fixtures for the command-line tests: the apr binary, plugin dirs and generated models."""

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Reuse the model cache of the Python suite (same generator, same cache directory).
_spec = importlib.util.spec_from_file_location("apr_python_conftest",
                                               REPO / "tests" / "python" / "conftest.py")
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)
models = _shared.models


@pytest.fixture(scope="session")
def apr_bin() -> Path:
    path = Path(os.environ.get("APR_BIN", REPO / "build" / "bin" / "apr"))
    if not path.exists():
        pytest.fail(f"apr binary not found at {path} (set APR_BIN)")
    return path


@pytest.fixture(scope="session")
def run_apr(apr_bin):
    def run(*args, check_exit=None, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run([str(apr_bin), *map(str, args)], capture_output=True, text=True,
                              timeout=300, env=full_env, errors="replace")
        if check_exit is not None:
            assert proc.returncode == check_exit, (
                f"apr {' '.join(map(str, args))} exited {proc.returncode}, want {check_exit}\n"
                f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")
        return proc
    return run
