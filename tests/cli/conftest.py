# SPDX-License-Identifier: MIT
"""Fixtures for the command-line tests: the apr binary, run_apr (no --plugin-dir: the tests pass
their own) and the generated models, all from tests/pytest_support/apr_fixtures.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pytest_support"))
from apr_fixtures import apr_bin, apr_plugin_dir, models, run_apr  # noqa: E402,F401
