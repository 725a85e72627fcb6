# SPDX-License-Identifier: MIT
"""`apr perplexity` on the default model (SmolLM2-135M-Instruct Q4_1) and the GPL-3 text of every
Debian system agrees within 1 % with llama.cpp's llama-perplexity on the same model, text, context
size and chunks: the figures in tests/fixtures/perplexity/, written by tools/perplexity-vs-llama.sh
(which says how llama-perplexity was built and run). The runs here are the fixture's short ones
(a few seconds each); its whole-text runs are documented in docs/TRACING.md.

Skipped, with the reason, when the default model is not installed or the text is missing."""

import hashlib
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "perplexity" / "llama_ppl_smollm2_gpl3.json"
TOLERANCE_PERCENT = 1.0
# apr against its own recorded figure: other CPUs' kernels round differently by ~1e-5.
SELF_TOL_REL = 1e-3

DOC = json.loads(FIXTURE.read_text())
SHORT_RUNS = [r for r in DOC["runs"] if r["chunks"] > 0]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture(scope="module")
def inputs(smollm2):
    text = Path(DOC["text"]["path"])
    if not text.is_file():
        pytest.skip(f"{text} is missing (Debian's base-files installs it)")
    assert sha256(text) == DOC["text"]["sha256"], (
        f"{text} is not the text {FIXTURE.name} was made from; rerun tools/perplexity-vs-llama.sh")
    assert sha256(smollm2) == DOC["model"]["sha256"], (
        f"{smollm2} is not the model {FIXTURE.name} was made from "
        f"({DOC['model']['file']}); rerun tools/perplexity-vs-llama.sh")
    return smollm2, text


def test_fixture_is_complete(inputs):
    # Takes `inputs` so that without the model every test of this file skips (CTest: SKIPPED).
    assert DOC["schema"] == "apr-perplexity-vs-llama-v1"
    assert SHORT_RUNS, "the fixture has no short runs for this test"
    for run in DOC["runs"]:
        assert run["llama"]["command"].startswith("llama-perplexity ")
        assert run["n_chunks"] == run["apr"]["n_chunks"] == len(run["llama"]["running"])
        # The fixture's own figures agree too (the whole-text runs included).
        assert abs(run["diff_percent"]) < TOLERANCE_PERCENT, run


@pytest.mark.parametrize("run", SHORT_RUNS, ids=lambda r: f"ctx{r['n_ctx']}-chunks{r['chunks']}")
def test_agrees_with_llama_perplexity(run_apr, inputs, run):
    model, text = inputs
    proc = run_apr("--backend=cpu", "--threads", "2", "perplexity", model, "-f", text, "-c",
                   run["n_ctx"], "--chunks", run["chunks"], "--json", check_exit=0)
    j = json.loads(proc.stdout)
    assert j["n_tokens"] == DOC["text"]["n_tokens"]
    assert j["n_chunks"] == run["n_chunks"]
    assert j["n_scored"] == run["apr"]["n_scored"]
    llama = run["llama"]["perplexity"]
    diff = (j["perplexity"] / llama - 1) * 100
    assert abs(diff) < TOLERANCE_PERCENT, (
        f"apr {j['perplexity']:.4f} vs llama-perplexity {llama:.4f}: {diff:+.2f} %")
    assert j["perplexity"] == pytest.approx(run["apr"]["perplexity"], rel=SELF_TOL_REL)
