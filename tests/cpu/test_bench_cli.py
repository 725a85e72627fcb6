# SPDX-License-Identifier: MIT
"""apr bench: llama-bench's tests and output fields (no speed is asserted, only shape and sense)."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gguf import GGUFReader

REPO = Path(__file__).resolve().parents[2]
APR = os.environ.get("APR_BIN", str(REPO / "build" / "bin" / "apr"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "tiny-q4_0.gguf"
    subprocess.run([sys.executable, str(REPO / "tools" / "gen_model.py"), "--arch", "qwen2",
                    "--preset", "tiny", "--type", "Q4_0", "--out", str(path)], check=True,
                   capture_output=True)
    return path


def bench(model: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([APR, "--backend=cpu", "--threads=2", "bench", str(model), *args],
                          capture_output=True, text=True, timeout=300)


def test_json_has_llama_bench_fields(model):
    p = bench(model, "-p", "8", "-n", "4", "-d", "0,16", "-r", "2", "--json")
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [r["test"] for r in rows] == ["pp8", "tg4", "pp8 @ d16", "tg4 @ d16"]
    reader = GGUFReader(model)
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    n_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    for r in rows:
        assert r["model_n_params"] == n_params and r["model_size"] == n_bytes
        assert len(r["samples_ns"]) == 2 and len(r["samples_ts"]) == 2
        tokens = r["n_prompt"] or r["n_gen"]
        for ns, ts in zip(r["samples_ns"], r["samples_ts"]):
            assert ns > 0 and ts == pytest.approx(1e9 * tokens / ns)
        assert r["avg_ts"] == pytest.approx(sum(r["samples_ts"]) / 2)
        assert r["stddev_ts"] >= 0
        assert r["trace_sink"] == "none"
        assert r["n_ubatch"] == 16  # the largest of the tests' prompt and depth, under 512


def test_ubatch_is_the_micro_batch_size(model):
    p = bench(model, "-p", "8", "-n", "0", "-r", "1", "-ub", "3", "--json")
    assert p.returncode == 0, p.stderr
    assert [r["n_ubatch"] for r in json.loads(p.stdout)] == [3]


def test_csv_and_markdown(model):
    p = bench(model, "-p", "8", "-n", "0", "-r", "1", "--csv")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == 1 and rows[0]["n_prompt"] == "8" and float(rows[0]["avg_ts"]) > 0
    p = bench(model, "-p", "0", "-n", "2", "-r", "1", "--trace-overhead")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0].startswith("| model | size | params | backend | threads | test | trace sink")
    assert [line.split("|")[6].strip() for line in lines[2:]] == ["tg2", "tg2"]
    assert [line.split("|")[7].strip() for line in lines[2:]] == ["none", "idle"]


@pytest.mark.parametrize("args, message", [
    (["-p", "1x"], "--prompt-tokens/-p expects whole numbers"),
    (["-p", "0", "-n", "0"], "no test to run"),
    (["-o", "xml"], "--output must be md, csv or json"),
    (["-d", "100000"], "exceed the model's context"),
    (["-r", "0"], "--repetitions"),
])
def test_bad_options_exit_2_with_one_line(model, args, message):
    p = bench(model, *args)
    assert p.returncode == 2
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1
