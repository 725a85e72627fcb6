# SPDX-License-Identifier: MIT
"""Fixtures of the malformed-input corpus: a valid tiny model to mutate, and the check of apr's
one-line error. The apr binary and run_apr come from tests/pytest_support/apr_fixtures.py."""

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "pytest_support"))

import gguf_bytes as gb  # noqa: E402
from apr_fixtures import apr_bin, apr_test_plugin_dir, run_apr  # noqa: E402,F401


@pytest.fixture(scope="session")
def apr_plugin_dir():
    return apr_test_plugin_dir()


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
