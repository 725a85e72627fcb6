# SPDX-License-Identifier: MIT
"""The README's walkthrough runs as written. The ```sh block under "## Walkthrough" is read from
README.md and each of its commands (continuation lines joined) is run by bash, in order, in a
scratch directory whose `build` is the build tree under test, on the default model. Every command
must exit 0, and what it leaves behind must be what the README says: an answer naming Paris, two
complete traces, "no divergence" from diff and bisect, and the HTML report.

Skipped, with the reason, when the default model is not installed or no Vulkan device is usable
(the README's Vulkan steps run on Mesa's lavapipe where there is no GPU)."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def walkthrough_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Walkthrough\n", 1)
    assert len(section) == 2, "README.md has no '## Walkthrough' section"
    block = re.search(r"```sh\n(.*?)```", section[1], re.S)
    assert block, "the README's walkthrough has no ```sh block"
    commands, current = [], ""
    for line in block.group(1).splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip() and not current.lstrip().startswith("#"):
            commands.append(current.strip())
        current = ""
    return commands


def vulkan_has_device(apr: Path) -> bool:
    proc = subprocess.run([str(apr), "plugins", "--json"], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        return False
    return any(p["name"] == "vulkan" and p.get("devices") for p in json.loads(proc.stdout)["plugins"])


def test_the_walkthrough_runs_as_written(apr_bin, smollm2, tmp_path):
    commands = walkthrough_commands()
    assert len(commands) >= 6, commands
    assert all(c.startswith("build/bin/apr ") or " build/bin/apr " in c for c in commands), commands
    if not vulkan_has_device(apr_bin):
        pytest.skip("no usable Vulkan device (not even Mesa's lavapipe): the walkthrough's "
                    "trace-vulkan and bisect steps need one")
    # `build/bin/apr` in the scratch directory is the binary under test. apr finds the default
    # model from the real location of its executable (the checkout's .venv), as it does in the
    # repository root.
    (tmp_path / "build").symlink_to(apr_bin.resolve().parents[1], target_is_directory=True)
    outputs = []
    for command in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True,
                              text=True, errors="replace", timeout=900)
        assert proc.returncode == 0, (
            f"README walkthrough: `{command}` exited {proc.returncode}\n"
            f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")
        outputs.append(proc.stdout)

    assert "Paris" in outputs[0], outputs[0]
    for trace in ("trace-cpu", "trace-vulkan"):
        manifest = json.loads((tmp_path / trace / "manifest.json").read_text())
        assert manifest, trace
        assert len(list((tmp_path / trace).glob("**/*.bin"))) >= 30 * 10, trace
    diff_out = next(o for c, o in zip(commands, outputs) if " diff " in c)
    assert "no divergence" in diff_out, diff_out[-2000:]
    bisects = [(c, o) for c, o in zip(commands, outputs) if " bisect " in c]
    for command, out in bisects:
        assert "no divergence" in out, (command, out[-2000:])
    steps_out = next(o for c, o in bisects if "--decode-steps 4" in c)
    assert "s4 " in steps_out and "every stage agrees" in steps_out, steps_out[-2000:]
    assert (tmp_path / "bisect.html").stat().st_size > 1000
