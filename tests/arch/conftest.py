# SPDX-License-Identifier: MIT
"""Fixtures for the outside checks of the newer families: the apr binary from
tests/pytest_support/apr_fixtures.py, the checked-in fixtures of tests/fixtures/arch (made by
tools/arch-fixtures.sh) and the environment under which a backend has a device."""

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pytest_support"))
from apr_fixtures import apr_bin, apr_test_plugin_dir, run_apr_process  # noqa: E402,F401

FIXTURES = REPO / "tests" / "fixtures" / "arch"
LAVAPIPE = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"


def load_fixture(family: str) -> dict:
    """fixture.json of one family, with "dir" added."""
    d = FIXTURES / family
    meta = json.loads((d / "fixture.json").read_text())
    meta["dir"] = d
    return meta


def has_device(apr, backend: str, env: dict) -> bool:
    proc = run_apr_process(apr, "plugins", "--json", check_exit=0, env=env, timeout=120)
    return any((backend == p["name"] or backend in p.get("aliases", [])) and p["devices"]
               for p in json.loads(proc.stdout)["plugins"])


@pytest.fixture(scope="session")
def backend_env(apr_bin):
    """backend_env(backend) -> the environment apr needs to run on it: {} for cpu; for vulkan the
    inherited environment if it has a device there, else lavapipe (Mesa's Vulkan on the CPU,
    VK_ICD_FILENAMES=LAVAPIPE). Skips the test, with the reason, when the backend has none."""
    cache: dict = {}

    def get(backend: str) -> dict:
        if backend not in cache:
            cache[backend] = None
            candidates = [{}]
            if backend == "vulkan" and os.path.exists(LAVAPIPE):
                candidates.append({"VK_ICD_FILENAMES": LAVAPIPE})
            for env in candidates:
                if has_device(apr_bin, backend, env):
                    cache[backend] = env
                    break
        if cache[backend] is None:
            pytest.skip(f"backend {backend}: no usable device in 'apr plugins'"
                        + (f" (not even lavapipe, {LAVAPIPE})" if backend == "vulkan" else ""))
        return cache[backend]

    return get


@pytest.fixture(scope="session")
def fault_plugin_dir():
    """The folder of the cpu-fault test plugin ($APR_TEST_PLUGIN_DIR); skips without it."""
    d = apr_test_plugin_dir()
    if not d or not (Path(d) / "apr-plugin-cpu-fault.so").exists():
        pytest.skip("the cpu-fault test plugin is not available (set APR_TEST_PLUGIN_DIR to the "
                    "build's test-plugins folder)")
    return d
