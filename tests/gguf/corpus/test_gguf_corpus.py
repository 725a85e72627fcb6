# SPDX-License-Identifier: MIT
"""Every malformed GGUF file of the corpus is refused by `apr info` (the reader) or `apr run`
(the model loader) with exactly its expected one-line error and exit status 2 — never a crash, a
hang or a silent success."""

import os
import subprocess

import pytest

from conftest import assert_one_line_error, error_lines
from gguf_cases import CASES

RUN = ["--backend=cpu", "run"]
RUN_ARGS = ["--prompt", "hi", "--max-tokens", "2", "--temperature", "0"]


def command(verb: str, path) -> list:
    return ["info", path] if verb == "info" else [*RUN, path, *RUN_ARGS]


def expected_line(case, path) -> str:
    return "apr: error: " + case.expected.format(path=path, name=path.name)


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


def test_the_base_model_runs(run_apr, base_model, tmp_path):
    path = tmp_path / "base.gguf"
    path.write_bytes(base_model.build())
    for verb in ("info", "run"):
        proc = run_apr(*command(verb, path))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert error_lines(proc) == [] and "warning" not in proc.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_gguf(run_apr, base_model, tmp_path, case):
    path = tmp_path / "bad.gguf"
    path.write_bytes(case.make(base_model))
    assert_one_line_error(run_apr(*command(case.verb, path)), expected_line(case, path))


def test_paths_that_are_not_gguf_files(run_apr, tmp_path):
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)  # must be refused at once, never waited on
    loop = tmp_path / "loop.gguf"
    loop.symlink_to(loop)
    missing = tmp_path / "missing.gguf"
    cases = [  # (path, what `apr info` says, what `apr run` says)
        (missing, f"{missing}: cannot open: No such file or directory",
         f"model file '{missing}' does not exist"),
        (tmp_path, f"{tmp_path}: not a regular file",
         f"model path '{tmp_path}' is a directory, not a GGUF file"),
        (fifo, f"{fifo}: not a regular file", f"{fifo}: not a regular file"),
        (loop, f"{loop}: cannot open: Too many levels of symbolic links",
         f"model file '{loop}' does not exist"),
    ]
    for path, info, run in cases:
        assert_one_line_error(run_apr("info", path, timeout=30), "apr: error: " + info)
        assert_one_line_error(run_apr(*command("run", path), timeout=30), "apr: error: " + run)


def by_name(name):
    return next(c for c in CASES if c.name == name)


def test_force_never_turns_nan_weights_into_output(run_apr, base_model, tmp_path):
    """--force loads an all-NaN model with warnings, but generation stops with an error: never
    exit 0 with a made-up token sequence."""
    for name in ("every weight NaN", "every weight +inf"):
        path = tmp_path / "nan.gguf"
        path.write_bytes(by_name(name).make(base_model))
        proc = run_apr(*RUN, path, *RUN_ARGS, "--force")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert len(error_lines(proc)) == 1 and "non-finite logit" in error_lines(proc)[0]
        assert "apr: warning: nan.gguf: tensor 'token_embd.weight' holds" in proc.stderr


@pytest.mark.parametrize("name", ["vocab_size key disagrees with the embedding",
                                  "bos id beyond the vocabulary", "NaN token score",
                                  "one NaN in blk.0.attn_norm"])
def test_force_loads_with_a_warning(run_apr, base_model, tmp_path, name):
    case = by_name(name)
    path = tmp_path / "m.gguf"
    path.write_bytes(case.make(base_model))
    refused = expected_line(case, path)
    assert refused.endswith("; use --force to load it anyway")
    proc = run_apr(*RUN, path, *RUN_ARGS, "--force")
    warning = "apr: warning: " + refused[len("apr: error: "):-len("; use --force to load it anyway")]
    assert warning in proc.stderr
    if name == "one NaN in blk.0.attn_norm":  # the NaN reaches the logits: still an error
        assert proc.returncode == 2 and "non-finite logit" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]
