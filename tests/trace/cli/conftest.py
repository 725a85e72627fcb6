# SPDX-License-Identifier: MIT
"""Fixtures for the trace/diff/bisect command-line tests: apr runs with the plugin directory holding
the cpu-fault test plugin, on tiny F32 models made by tools/gen_model.py. The apr binary and
run_apr come from tests/pytest_support/apr_fixtures.py."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "pytest_support"))
from apr_fixtures import apr_bin, apr_test_plugin_dir, run_apr, smollm2  # noqa: E402,F401


@pytest.fixture(scope="session")
def apr_plugin_dir():
    """run_apr loads the test-only plugins too: the cpu-fault twin is backend cpu-fault."""
    return apr_test_plugin_dir()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def make_model(model_dir):
    """make_model(arch) -> path of a tiny F32 model of that architecture."""

    def make(arch: str, **extra) -> Path:
        suffix = "".join(f"-{k}{v}" for k, v in sorted(extra.items()))
        out = model_dir / f"{arch}-tiny{suffix}.gguf"
        if not out.exists():
            cmd = [sys.executable, str(REPO / "tools" / "gen_model.py"), "--arch", arch,
                   "--preset", "tiny", "--type", "F32", "--out", str(out)]
            for k, v in extra.items():
                cmd += [f"--{k}", str(v)]
            subprocess.run(cmd, check=True, capture_output=True)
        return out

    return make


def read_aprt(path: Path):
    """(layer, float32 values) of an APRT file, read independently of apr's own reader."""
    import numpy as np

    data = path.read_bytes()
    assert data[:4] == b"APRT", path
    layer = int.from_bytes(data[4:8], "little")
    count = int.from_bytes(data[8:12], "little")
    assert len(data) == 12 + 4 * count, path
    return layer, np.frombuffer(data[12:], dtype="<f4")
