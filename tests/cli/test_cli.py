# SPDX-License-Identifier: MIT
"""End-to-end tests of the apr command line: apr run --json, argument errors and malformed models.

Every error must be one line on stderr, exit status 2, and nothing on stdout that could pass for
a result.
"""

import json
import os
import random
from pathlib import Path

import pytest
from apr_fixtures import assert_one_line_error


@pytest.fixture(scope="module")
def qwen(models):
    return models.get("qwen2", "tiny", "Q8_0")


@pytest.fixture(scope="module")
def llama(models):
    return models.get("llama", "tiny", "F32")


# --- apr run --json ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_run_json_end_to_end(run_apr, models, arch):
    model = models.get(arch, "tiny", "F32")
    proc = run_apr("--backend=cpu", "run", model, "--prompt", "Hello, world! 12 + 30 = 42",
                   "--max-tokens", "16", "--temperature", "0", "--json", check_exit=0)
    out = json.loads(proc.stdout)
    for key in ("model", "backend", "prompt_token_ids", "generated_token_ids", "text", "timings"):
        assert key in out, key
    assert out["backend"] == "cpu"
    assert out["model"] == str(model)
    assert len(out["prompt_token_ids"]) > 3
    assert all(isinstance(t, int) for t in out["prompt_token_ids"] + out["generated_token_ids"])
    assert 1 <= len(out["generated_token_ids"]) <= 16
    if out["stop_reason"] == "max_tokens":
        assert len(out["generated_token_ids"]) == 16
    for key in ("load_s", "prefill_tok_s", "decode_tok_s"):
        assert out["timings"][key] >= 0
    assert out["timings"]["prefill_tok_s"] > 0


def test_backend_option_before_and_after_the_verb(run_apr, qwen):
    args = ["--prompt", "abc", "--max-tokens", "4", "--temperature", "0", "--json"]
    before = json.loads(run_apr("--backend=cpu", "run", qwen, *args, check_exit=0).stdout)
    after = json.loads(run_apr("run", qwen, *args, "--backend", "cpu", check_exit=0).stdout)
    assert before["backend"] == after["backend"] == "cpu"
    assert before["generated_token_ids"] == after["generated_token_ids"]


def test_greedy_is_deterministic_and_seed_reproduces_sampling(run_apr, qwen):
    base = ["run", qwen, "--prompt", "Once upon a time", "--max-tokens", "12", "--json"]
    g1 = json.loads(run_apr(*base, "--temperature", "0", check_exit=0).stdout)
    g2 = json.loads(run_apr(*base, "--temperature", "0", "--threads", "1", check_exit=0).stdout)
    assert g1["generated_token_ids"] == g2["generated_token_ids"]
    s1 = json.loads(run_apr(*base, "--temperature", "1.5", "--seed", "7", check_exit=0).stdout)
    s2 = json.loads(run_apr(*base, "--temperature", "1.5", "--seed", "7", check_exit=0).stdout)
    assert s1["generated_token_ids"] == s2["generated_token_ids"]
    assert s1["sampling"]["seed"] == 7


def test_text_mode_streams_text(run_apr, qwen):
    proc = run_apr("run", qwen, "--prompt", "Hi", "--max-tokens", "5", "--temperature", "0",
                   check_exit=0)
    assert proc.stdout.endswith("\n")
    assert "generated" in proc.stderr


def test_tokens_prompt_matches_text_prompt(run_apr, qwen):
    text = json.loads(run_apr("run", qwen, "--prompt", "The cat sat", "--max-tokens", "3",
                              "--temperature", "0", "--json", check_exit=0).stdout)
    ids = ",".join(map(str, text["prompt_token_ids"]))
    tok = json.loads(run_apr("run", qwen, "--tokens", ids, "--max-tokens", "3",
                             "--temperature", "0", "--json", check_exit=0).stdout)
    assert tok["generated_token_ids"] == text["generated_token_ids"]


def test_ubatch_splits_the_prompt_without_changing_greedy_tokens(run_apr, qwen):
    """--ubatch N (llama.cpp's -ub): the prompt runs in micro-batches through the KV cache; the
    cpu backend computes each row alike whatever the batch, so the tokens are the same."""
    base = ["--backend=cpu", "run", qwen, "--prompt", "The cat sat on the mat and then",
            "--max-tokens", "6", "--temperature", "0", "--json"]
    whole = json.loads(run_apr(*base, check_exit=0).stdout)
    assert len(whole["prompt_token_ids"]) > 3
    for ub in (["--ubatch", "1"], ["--ubatch", "3"], ["-ub", "2"]):
        split = json.loads(run_apr(*base, *ub, check_exit=0).stdout)
        assert split["generated_token_ids"] == whole["generated_token_ids"], ub


# --- argument errors --------------------------------------------------------------------------

@pytest.mark.parametrize("args,fragment", [
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["run"], "give exactly one of --prompt (-p), --file (-f) and --tokens"),
    (["run", "MODEL"], "give exactly one of --prompt (-p), --file (-f) and --tokens"),
    (["run", "MODEL", "--prompt", "x", "--tokens", "1"], "give exactly one of --prompt (-p)"),
    (["run", "MODEL", "--prompt", "x", "--top-p", "2"], "--top-p"),
    (["run", "MODEL", "--prompt", "x", "--temperature", "-1"], "--temperature"),
    (["run", "MODEL", "--prompt", "x", "--max-tokens", "lots"], "max-tokens"),
    (["run", "MODEL", "--prompt", "x", "--no-such-flag"], "no-such-flag"),
    (["run", "MODEL", "--tokens", "1,,2"], "item 2 is empty"),
    (["run", "MODEL", "--tokens", "1,x"], "'x' is not a token id"),
    (["run", "MODEL", "--tokens", "99999999"], "outside the vocabulary"),
    (["--backend=nonesuch", "run", "MODEL", "--prompt", "x"],
     "backend 'nonesuch' is not available; available: "),
    (["--device=9", "run", "MODEL", "--prompt", "x", "--backend=cpu"], "device 9 does not exist"),
    (["run", "MODEL", "extra", "--prompt", "x"], "too many arguments"),
    (["run", "MODEL", "--prompt", "x", "--ubatch", "0"], "--ubatch must be"),
    (["bench", "MODEL", "-p", "8", "-n", "0", "-ub", "0"], "--ubatch must be"),
])
def test_bad_arguments_give_one_line_and_exit_2(run_apr, qwen, args, fragment):
    args = [str(qwen) if a == "MODEL" else a for a in args]
    assert_one_line_error(run_apr(*args), fragment)


def test_help_teaches(run_apr):
    top = run_apr("--help", check_exit=0).stdout
    for verb in ("run", "info", "plugins", "trace", "diff", "bisect", "bench"):
        assert f"  {verb} " in top
    assert "Examples:" in top
    run_help = run_apr("run", "--help", check_exit=0).stdout
    for flag in ("--prompt", "--max-tokens", "--temperature", "--top-k", "--top-p", "--seed",
                 "--json", "--backend"):
        assert flag in run_help
    assert run_apr("help", "run", check_exit=0).stdout == run_help
    assert run_apr(check_exit=2).stdout.startswith("apr - ")


# --- missing and malformed model files -------------------------------------------------------

def test_missing_model(run_apr, tmp_path):
    assert_one_line_error(run_apr("run", tmp_path / "nope.gguf", "--prompt", "x"),
                          "does not exist")
    assert_one_line_error(run_apr("run", tmp_path, "--prompt", "x"), "is a directory")


def malformed_variants(valid: bytes, tmp: Path):
    rng = random.Random(1)
    yield "empty", b""
    yield "text", b"this is not a model\n" * 10
    yield "random", bytes(rng.randrange(256) for _ in range(4096))
    yield "bad-magic", b"GGUX" + valid[4:]
    yield "version-1", valid[:4] + (1).to_bytes(4, "little") + valid[8:]
    yield "version-byteswapped", valid[:4] + (3 << 24).to_bytes(4, "little") + valid[8:]
    yield "huge-tensor-count", valid[:8] + (2**62).to_bytes(8, "little") + valid[16:]
    yield "huge-kv-count", valid[:16] + (2**62).to_bytes(8, "little") + valid[24:]
    for cut in (7, 23, 100, 1000, len(valid) // 2, len(valid) - 1):
        yield f"truncated-{cut}", valid[:cut]
    for i in range(12):  # random byte corruption in the header and metadata
        data = bytearray(valid)
        for _ in range(8):
            data[rng.randrange(24, min(len(data), 20000))] = rng.randrange(256)
        yield f"corrupt-{i}", bytes(data)


def test_malformed_models_never_crash(run_apr, qwen, tmp_path):
    valid = Path(qwen).read_bytes()
    for name, data in malformed_variants(valid, tmp_path):
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(data)
        for verb in (["run", path, "--prompt", "hello", "--max-tokens", "2", "--temperature", "0"],
                     ["info", path]):
            proc = run_apr(*verb)
            if name.startswith("corrupt") and proc.returncode == 0:
                continue  # a flipped byte inside a string or a weight can leave a valid file
            assert proc.returncode == 2, f"{name}: exit {proc.returncode}: {proc.stderr[-500:]}"
            lines = [l for l in proc.stderr.splitlines() if l.strip()]
            assert len(lines) == 1 and lines[0].startswith("apr: error: "), (name, proc.stderr)
            if not name.startswith("corrupt"):
                assert path.name in lines[0] or "does not exist" in lines[0], (name, lines[0])


def test_unsupported_tensor_type_names_tensor_and_type(run_apr, qwen, tmp_path):
    import gguf
    reader = gguf.GGUFReader(qwen)
    target = next(t for t in reader.tensors if t.name == "blk.0.ffn_up.weight")
    data = bytearray(Path(qwen).read_bytes())
    # The type id is the u32 right before the tensor's u64 offset in its info record.
    type_pos = target.field.offset + sum(p.nbytes for p in target.field.parts[:-2])
    assert int.from_bytes(data[type_pos:type_pos + 4], "little") == int(target.tensor_type)
    data[type_pos:type_pos + 4] = (16).to_bytes(4, "little")  # IQ2_XXS, 66 bytes per 256
    path = tmp_path / "iq2.gguf"
    path.write_bytes(bytes(data))
    proc = run_apr("run", path, "--prompt", "x")
    assert proc.returncode == 2
    assert "blk.0.ffn_up.weight" in proc.stderr and "IQ2_XXS" in proc.stderr, proc.stderr


# --- info and plugins -------------------------------------------------------------------------

def test_info_json(run_apr, qwen):
    info = json.loads(run_apr("info", qwen, "--json", check_exit=0).stdout)
    assert info["architecture"] == "qwen2"
    assert info["runnable"] is True
    assert info["hyperparameters"]["n_layer"] == 2
    assert info["tokenizer"]["model"] == "gpt2"
    assert "Q8_0" in info["tensor_types"]


def test_plugins_lists_cpu_and_refusals(run_apr, tmp_path):
    (tmp_path / "apr-plugin-broken.so").write_text("not a library")
    out = json.loads(run_apr("plugins", "--json", "--plugin-dir", tmp_path, check_exit=0).stdout)
    names = [p["name"] for p in out["plugins"]]
    assert "cpu" in names
    cpu = out["plugins"][names.index("cpu")]
    assert cpu["abi_version"].startswith("1.") and cpu["devices"]
    refused = {Path(r["path"]).name: r["reason"] for r in out["refused"]}
    assert "cannot load" in refused["apr-plugin-broken.so"]
    text = run_apr("plugins", "--plugin-dir", tmp_path, check_exit=0).stdout
    assert "apr-plugin-broken.so: cannot load" in text


# --- the C99 example plugin, a second implementation of every kernel --------------------------

@pytest.mark.parametrize("arch,file_type", [("qwen2", "F32"), ("llama", "F16")])
def test_example_plugin_agrees_with_cpu(run_apr, models, arch, file_type, tmp_path):
    test_plugins = Path(os.environ.get("APR_TEST_PLUGIN_DIR", ""))
    if not (test_plugins / "apr-plugin-example.so").exists():
        pytest.fail(f"example plugin not found in APR_TEST_PLUGIN_DIR={test_plugins}")
    model = models.get(arch, "tiny", file_type)
    args = ["run", model, "--prompt", "Tell me a story about 7 cats", "--max-tokens", "12",
            "--temperature", "0", "--json", "--plugin-dir", test_plugins]
    cpu = json.loads(run_apr("--backend=cpu", *args, "--dump-logits", tmp_path / "cpu.npy",
                             check_exit=0).stdout)
    ex = json.loads(run_apr("--backend=example", *args, "--dump-logits", tmp_path / "ex.npy",
                            check_exit=0).stdout)
    assert ex["backend"] == "example"
    assert ex["generated_token_ids"] == cpu["generated_token_ids"]
    import numpy as np
    a, b = np.load(tmp_path / "cpu.npy"), np.load(tmp_path / "ex.npy")
    assert a.shape == b.shape and np.isfinite(a).all()
    # Both accumulate in f32/f64 over O(1) values: agreement to 1e-4 of the logit scale.
    assert np.abs(a - b).max() <= 1e-4 * max(1.0, np.abs(b).max())


def test_example_plugin_refuses_quantized_weights_by_name(run_apr, qwen):
    test_plugins = os.environ.get("APR_TEST_PLUGIN_DIR", "")
    proc = run_apr("--backend=example", "--plugin-dir", test_plugins, "run", qwen, "--prompt",
                   "x")
    assert proc.returncode == 2
    assert "token_embd.weight" in proc.stderr, proc.stderr
    assert "cannot load weight type Q8_0" in proc.stderr, proc.stderr


def test_model_needing_abi_1_1_is_refused_on_a_1_0_plugin(run_apr, models):
    """A plugin of ABI 1.0 would ignore rope_freqs and compute wrong angles without a word: the
    host must refuse to run such a model on it, naming the reason."""
    bad_dir = os.environ.get("APR_TEST_BAD_PLUGIN_DIR", "")
    if not (Path(bad_dir) / "apr-plugin-bad-abi-minor-0.so").exists():
        pytest.fail(f"ABI 1.0 test plugin not found in APR_TEST_BAD_PLUGIN_DIR={bad_dir}")
    model = models.get("llama", "tiny", "F32", rope_freqs=True)
    proc = run_apr("--plugin-dir", bad_dir, "--backend=bad-abi-minor-0", "run", model,
                   "--prompt", "x")
    assert_one_line_error(proc, "speaks plugin ABI 1.0", "rope_freqs.weight", "ABI 1.1")
    # The same model runs on the cpu plugin, which speaks 1.1.
    run_apr("--backend=cpu", "run", model, "--prompt", "x", "--max-tokens", "2", check_exit=0)
