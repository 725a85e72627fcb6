# SPDX-License-Identifier: MIT
"""`apr trace` is all-or-nothing: a run killed with SIGKILL at any point, a killed re-trace, four
traces racing for one directory, and SIGINT/SIGTERM all leave either the previous complete trace
or the new complete one, never a mix; and `apr diff` on what is left never reports a false
divergence or a false "no divergence"."""

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from apr_fixtures import apr_command, apr_env, apr_test_plugin_dir

TOKENS = ["1,17,250,99,4,33,7", "5,6,7,8", "300,2,2,2,9", "42,43"]
STALL_AFTER = 10  # files written before a stalled run pauses (APR_TRACE_TEST_STALL)


def trace_args(model, out, tokens):
    return ["--backend=cpu", "trace", model, "--tokens", tokens, "--save-tensor", "all",
            "--save-tensor-dir", out, "--save-tensor-layers", "0..2"]


@pytest.fixture(scope="module")
def model(make_model):
    return make_model("qwen2")


@pytest.fixture(scope="module")
def refs(model, tmp_path_factory, apr_bin):
    """A complete, undisturbed trace of each token list."""
    root = tmp_path_factory.mktemp("refs")
    out = {}
    for tokens in TOKENS:
        d = root / tokens.replace(",", "-")
        subprocess.run(command(apr_bin, trace_args(model, d, tokens)), check=True,
                       capture_output=True, timeout=300)
        out[tokens] = d
    return out


def command(apr_bin, args):
    return apr_command(apr_bin, *args, plugin_dir=apr_test_plugin_dir())


def start(apr_bin, args, stall_ms):
    env = apr_env({"APR_TRACE_TEST_STALL": f"{STALL_AFTER}:{stall_ms}"} if stall_ms else None)
    return subprocess.Popen(command(apr_bin, args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def staging_dirs(target: Path):
    return sorted(target.parent.glob(f".{target.name}.trace-tmp-*"))


def wait_until_mid_trace(proc, target: Path) -> Path:
    """The staging directory once the stalled run has written STALL_AFTER files."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for d in staging_dirs(target):
            if len(list(d.rglob("*.bin"))) >= STALL_AFTER:
                return d
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the stalled trace never reached its pause")


def leftovers(target: Path):
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def assert_is_complete_trace_of(run_apr, d: Path, ref: Path):
    """d holds exactly ref's trace: same manifest, every stage measured, no divergence."""
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest == json.loads((ref / "manifest.json").read_text())
    proc = run_apr("diff", "--values", d, ref, "--json", "--min-cosine", "0.999999")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    j = json.loads(proc.stdout)
    assert j["complete"] and j["unmeasured"] == 0 and j["measured"] == len(manifest["files"])
    listing = {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}
    assert listing == {f["path"] for f in manifest["files"]} | {"manifest.json"}


def assert_not_comparable(run_apr, d: Path, ref: Path):
    """Another prompt's trace: refused, never "no divergence"."""
    proc = run_apr("diff", "--values", d, ref)
    assert proc.returncode == 2 and "different token ids" in proc.stderr, proc.stderr


def test_sigkill_during_a_first_trace_leaves_nothing_that_compares(run_apr, apr_bin, model,
                                                                   refs, tmp_path):
    target = tmp_path / "t"
    proc = start(apr_bin, trace_args(model, target, TOKENS[0]), stall_ms=60000)
    staging = wait_until_mid_trace(proc, target)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    # The target does not exist, so there is nothing to compare...
    proc = run_apr("diff", "--values", target, refs[TOKENS[0]])
    assert proc.returncode == 2 and "no such file or directory" in proc.stderr
    # ...and the killed run's partial files, if compared by hand, are never "no divergence".
    proc = run_apr("diff", "--values", staging, refs[TOKENS[0]])
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "incomplete" in proc.stdout and "UNMEASURED (only in B)" in proc.stdout
    assert "has stage files but no manifest.json" in proc.stderr
    # The next trace removes the leftover and writes a complete trace.
    proc = run_apr(*trace_args(model, target, TOKENS[0]))
    assert proc.returncode == 0, proc.stderr
    assert f"apr: note: removed {staging} left by an interrupted trace" in proc.stderr
    assert leftovers(target) == []
    assert_is_complete_trace_of(run_apr, target, refs[TOKENS[0]])


def test_sigkill_during_a_retrace_keeps_the_old_trace_whole(run_apr, apr_bin, model, refs,
                                                           tmp_path):
    target = tmp_path / "t"
    assert run_apr(*trace_args(model, target, TOKENS[0])).returncode == 0
    for attempt in range(3):
        proc = start(apr_bin, trace_args(model, target, TOKENS[1]), stall_ms=60000)
        wait_until_mid_trace(proc, target)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_is_complete_trace_of(run_apr, target, refs[TOKENS[0]])
        assert_not_comparable(run_apr, target, refs[TOKENS[1]])
    proc = run_apr(*trace_args(model, target, TOKENS[1]))
    assert proc.returncode == 0, proc.stderr
    assert leftovers(target) == []
    assert_is_complete_trace_of(run_apr, target, refs[TOKENS[1]])


@pytest.mark.parametrize("stall_ms", [0, 300], ids=["racing", "overlapping"])
def test_four_concurrent_traces_into_one_directory(run_apr, apr_bin, model, refs, tmp_path,
                                                   stall_ms):
    for round_ in range(3):
        target = tmp_path / f"t{round_}"
        procs = [start(apr_bin, trace_args(model, target, t), stall_ms) for t in TOKENS]
        outcomes = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
        winners = 0
        for code, stderr in outcomes:
            if code == 0:
                winners += 1
            else:
                assert code == 2, stderr
                assert stderr == f"apr: error: another trace is writing {target}\n", stderr
        assert winners >= 1
        if stall_ms:
            assert winners < 4, "overlapping runs must have met the lock"
        manifest = json.loads((target / "manifest.json").read_text())
        tokens = ",".join(map(str, manifest["token_ids"]))
        assert_is_complete_trace_of(run_apr, target, refs[tokens])
        for other in TOKENS:
            if other != tokens:
                assert_not_comparable(run_apr, target, refs[other])
        assert leftovers(target) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_cleans_up_and_exits_non_zero(run_apr, apr_bin, model, refs, tmp_path, sig):
    target = tmp_path / "t"
    # A first trace interrupted: nothing is left at all.
    proc = start(apr_bin, trace_args(model, target, TOKENS[0]), stall_ms=60000)
    wait_until_mid_trace(proc, target)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    assert proc.returncode == 2
    assert stderr == f"apr: error: interrupted by {name}; the partial trace was removed\n"
    assert not target.exists() and leftovers(target) == []
    # A re-trace interrupted: the earlier trace stays as it was.
    assert run_apr(*trace_args(model, target, TOKENS[0])).returncode == 0
    proc = start(apr_bin, trace_args(model, target, TOKENS[1]), stall_ms=60000)
    wait_until_mid_trace(proc, target)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert leftovers(target) == []
    assert_is_complete_trace_of(run_apr, target, refs[TOKENS[0]])


def test_a_directory_that_is_not_a_trace_is_never_replaced(run_apr, model, tmp_path):
    target = tmp_path / "docs"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    proc = run_apr(*trace_args(model, target, TOKENS[0]))
    assert proc.returncode == 2
    assert proc.stderr == (f"apr: error: trace directory {target} holds files that are not part "
                           "of a trace; it would be replaced as a whole, so choose an empty or "
                           "new directory\n")
    assert (target / "notes.txt").read_text() == "keep me" and leftovers(target) == []
    afile = tmp_path / "file"
    afile.write_text("x")
    proc = run_apr(*trace_args(model, afile, TOKENS[0]))
    assert proc.returncode == 2 and "exists and is not a directory" in proc.stderr


def test_missing_manifest_counts_missing_stages_as_unmeasured(run_apr, refs, tmp_path):
    ref = refs[TOKENS[0]]
    partial = tmp_path / "partial"  # what an older apr left after a kill: files, no manifest
    shutil.copytree(ref, partial)
    (partial / "manifest.json").unlink()
    for p in sorted((partial / "layer-1").glob("*.bin"))[:5]:
        p.unlink()
    (partial / "lm_head.bin").unlink()
    for a, b, side in [(partial, ref, "A"), (ref, partial, "B")]:
        proc = run_apr("diff", "--values", a, b)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "incomplete: no measured stage is below 0.999, but 6 stage(s) are UNMEASURED" \
            in proc.stdout
        assert f"apr: note: {side} ({partial}) has stage files but no manifest.json" in proc.stderr
        j = json.loads(run_apr("diff", "--values", a, b, "--json").stdout)
        assert j["unmeasured"] == 6 and not j["complete"] and j["first_divergence"] is None
    # All files present but no manifest: every stage is measured, so a clean verdict, plus a note.
    whole = tmp_path / "whole"
    shutil.copytree(ref, whole)
    (whole / "manifest.json").unlink()
    proc = run_apr("diff", "--values", whole, ref)
    assert proc.returncode == 0 and "no divergence" in proc.stdout
    assert "has stage files but no manifest.json" in proc.stderr
    # A plain aprender tree on both sides still compares, with a note that says what it cannot see.
    proc = run_apr("diff", "--values", whole, whole)
    assert proc.returncode == 0 and "neither directory has a manifest.json" in proc.stderr
    # A listed file that is missing is UNMEASURED too, even when both sides lack it.
    listed = tmp_path / "listed"
    shutil.copytree(ref, listed)
    (listed / "layer-0" / "ffn_up.bin").unlink()
    proc = run_apr("diff", "--values", listed, listed)
    assert proc.returncode == 3, proc.stdout
    assert "UNMEASURED (listed but missing on both sides)" in proc.stdout
    assert "1 file(s) listed in manifest.json are missing" in proc.stderr


def test_bisect_against_a_reference_with_missing_stages_is_incomplete(run_apr, model, refs,
                                                                      tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(refs[TOKENS[0]], ref)
    (ref / "manifest.json").unlink()
    (ref / "layer-0" / "attention.bin").unlink()
    proc = run_apr("bisect", model, "--backend-a", "cpu", "--reference", ref, "--tokens",
                   TOKENS[0], "--json")
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr
    j = json.loads(proc.stdout)
    assert j["first_divergence"] is None and j["unmeasured"] >= 1 and not j["complete"]
    assert "has stage files but no manifest.json" in proc.stderr
