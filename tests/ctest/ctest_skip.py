# SPDX-License-Identifier: MIT
"""pytest plugin for the CTest entries that run a pytest file (loaded with `-p ctest_skip`).

CTest reports such an entry as skipped only through its exit status (SKIP_RETURN_CODE 77),
never by matching text in the output: a failure's traceback can contain any text, including a
skip reason. The status is 77 exactly when the run had no failure or error, collected at least
one test, and every test was skipped — that is, when a precondition (the apr binary, a device,
an optional module) was missing for the whole file. Any failure keeps pytest's own non-zero
status; a file where some tests pass and some skip passes, and `-rs` lists the reasons.

APR_TEST_PLANT_FAILURE=1 makes every test fail with a message that quotes skip reasons, and
APR_TEST_PLANT_SKIP=1 skips every test as a missing precondition would, so CI can prove that a
failing run is red and a skipped one is skipped (tools/ci-skip-check.sh).
"""

import os

import pytest

SKIP_RETURN_CODE = 77

_outcomes = {"passed": 0, "skipped": 0, "failed": 0}


def pytest_runtest_logreport(report):
    if report.failed:
        _outcomes["failed"] += 1
    elif report.skipped and report.when in ("setup", "call") and not hasattr(report, "wasxfail"):
        _outcomes["skipped"] += 1
    elif report.passed and report.when == "call":
        _outcomes["passed"] += 1


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture, so a fixture that would skip (no device) cannot hide the planted fault.
    if os.environ.get("APR_TEST_PLANT_FAILURE") == "1":
        pytest.fail("planted failure (APR_TEST_PLANT_FAILURE=1); this text mentions "
                    "'apr CLI not built', 'no usable device' and 'SKIPPED:' on purpose, and the "
                    "run must still be reported as failed", pytrace=False)
    if os.environ.get("APR_TEST_PLANT_SKIP") == "1":
        pytest.skip("planted skip (APR_TEST_PLANT_SKIP=1): a missing precondition")


def pytest_sessionfinish(session, exitstatus):
    # xfail/xpass count as neither; "all skipped" needs a skip and nothing else that ran.
    if (exitstatus == pytest.ExitCode.OK and session.testscollected > 0
            and _outcomes["skipped"] > 0 and _outcomes["passed"] == 0
            and _outcomes["failed"] == 0):
        session.exitstatus = SKIP_RETURN_CODE
