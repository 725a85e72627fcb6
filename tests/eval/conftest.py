# SPDX-License-Identifier: MIT
"""Fixtures for the `apr perplexity` command-line tests: apr runs with the plugin directory holding
the cpu-fault test plugin, on tiny F32 models of tools/aprgen (cached in $APR_TEST_MODELS_DIR) and
on the default model SmolLM2-135M-Instruct where it is installed. The apr binary, run_apr and the
model cache come from tests/pytest_support/apr_fixtures.py."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pytest_support"))
from apr_fixtures import (apr_bin, apr_test_plugin_dir, assert_one_line_error,  # noqa: E402,F401
                          models, run_apr, smollm2)


@pytest.fixture(scope="session")
def apr_plugin_dir():
    """run_apr loads the test-only plugins too: the cpu-fault twin is backend cpu-fault."""
    return apr_test_plugin_dir()
