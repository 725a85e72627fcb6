# SPDX-License-Identifier: MIT
"""Fixtures for the trace/diff/bisect command-line tests: the apr binary, the plugin directory
holding the cpu-fault test plugin, and tiny F32 models made by tools/gen_model.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def apr_bin() -> Path:
    path = Path(os.environ.get("APR_BIN", REPO / "build" / "bin" / "apr"))
    if not path.exists():
        pytest.fail(f"apr binary not found at {path} (set APR_BIN)")
    return path


@pytest.fixture(scope="session")
def run_apr(apr_bin):
    """Runs apr with the test plugin directory on the search path; returns the process."""

    def run(*args, exit_code=None, env=None):
        full_env = dict(os.environ)
        full_env.pop("APR_CPU_FAULT", None)
        full_env.update(env or {})
        plugin_dir = os.environ.get("APR_TEST_PLUGIN_DIR")
        extra = [f"--plugin-dir={plugin_dir}"] if plugin_dir else []
        proc = subprocess.run([str(apr_bin), *extra, *map(str, args)], capture_output=True,
                              text=True, timeout=300, env=full_env, errors="replace")
        if exit_code is not None:
            assert proc.returncode == exit_code, (
                f"apr {' '.join(map(str, args))} exited {proc.returncode}, want {exit_code}\n"
                f"stdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-2000:]}")
        return proc

    return run


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
