# SPDX-License-Identifier: MIT
"""Import paths for the generator (tools/aprgen) and the float64 reference (tests/reference), and
the generated-model cache `models` of tests/pytest_support/apr_fixtures.py (which also sets
OPENBLAS_NUM_THREADS before numpy is first imported)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pytest_support"))
from apr_fixtures import REPO, TOOLS, models  # noqa: E402,F401

REFERENCE = REPO / "tests" / "reference"
for p in (TOOLS, REFERENCE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
