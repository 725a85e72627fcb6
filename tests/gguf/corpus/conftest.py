# SPDX-License-Identifier: MIT
"""Fixtures of the malformed-input corpus: the apr binary and a valid tiny model to mutate."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))

import gguf_bytes as gb  # noqa: E402


@pytest.fixture(scope="session")
def apr_bin() -> Path:
    path = Path(os.environ.get("APR_BIN", REPO / "build" / "bin" / "apr"))
    if not path.exists():
        pytest.fail(f"apr binary not found at {path} (set APR_BIN)")
    return path


@pytest.fixture(scope="session")
def run_apr(apr_bin):
    def run(*args, timeout=120):
        plugin_dir = os.environ.get("APR_TEST_PLUGIN_DIR")
        extra = [f"--plugin-dir={plugin_dir}"] if plugin_dir else []
        return subprocess.run([str(apr_bin), *extra, *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, errors="replace",
                              stdin=subprocess.DEVNULL)

    return run


@pytest.fixture(scope="session")
def base_model(tmp_path_factory) -> gb.Gguf:
    """The tiny F32 qwen2 model of tools/gen_model.py, re-encoded (byte-identical)."""
    out = tmp_path_factory.mktemp("base") / "qwen2-tiny.gguf"
    subprocess.run([sys.executable, str(REPO / "tools" / "gen_model.py"), "--arch", "qwen2",
                    "--preset", "tiny", "--type", "F32", "--out", str(out)], check=True,
                   capture_output=True)
    g = gb.from_file(out)
    assert g.build() == out.read_bytes(), "the re-encoder must reproduce the generator's bytes"
    return g


def error_lines(proc) -> list:
    """The lines apr prints for an error: exactly one is expected."""
    return [line for line in proc.stderr.splitlines()
            if line.startswith(("apr: error", "apr: internal", "apr: backend"))]


def assert_one_line_error(proc, expected: str):
    assert proc.returncode == 2, f"exit {proc.returncode}, want 2\nstderr: {proc.stderr[-2000:]}"
    assert error_lines(proc) == [expected], proc.stderr[-2000:]
