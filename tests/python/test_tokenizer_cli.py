# SPDX-License-Identifier: MIT
"""apr's prompt tokenization against independent tokenizers over the generated vocabularies:
HF `tokenizers` configured as Qwen2's tokenizer.json (gpt2 files) and the score-ordered
SentencePiece merge of test_generator.py (llama files). Skipped until apr exists."""

import json
import os
import subprocess

import pytest
from gguf import GGUFReader

from test_generator import spm_encode
from test_model_logits import apr_binary

QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

TEXTS = [
    "Hello world",
    "The quick brown fox can't stop 12345 times!",
    "  leading spaces,\ttabs\n\nand blank lines  ",
    "def f(x):\n    return x * 2  # café",
    "今天天气很好 🙂 東京",
]
CHAT = "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def apr():
    path = apr_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"apr CLI not built: {path} does not exist (set APR_BIN)")
    return path


def apr_prompt_ids(apr, model, text):
    cmd = [str(apr), "--backend=cpu", "run", str(model), "--prompt", text, "--max-tokens", "1",
           "--temperature", "0", "--json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)["prompt_token_ids"]


def strings(reader, key):
    return reader.fields[key].contents()


def qwen2_reference_tokenizer(path):
    tokenizers = pytest.importorskip("tokenizers")
    r = GGUFReader(str(path))
    tokens = strings(r, "tokenizer.ggml.tokens")
    types = strings(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in strings(r, "tokenizer.ggml.merges")]
    regular = {t: i for i, t in enumerate(tokens) if types[i] == 1}
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=regular, merges=merges))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Sequence([
        tokenizers.pre_tokenizers.Split(tokenizers.Regex(QWEN2_PATTERN), behavior="isolated"),
        tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    controls = [tokens[i] for i, t in enumerate(types) if t == 3]
    tok.add_special_tokens([tokenizers.AddedToken(c, special=True) for c in controls])
    ids = {t: i for i, t in enumerate(tokens)}
    return lambda text: [ids[tok.id_to_token(i)] for i in tok.encode(text).ids]


@pytest.mark.parametrize("text", TEXTS + [CHAT])
def test_gpt2_prompt_ids(apr, models, text):
    path = models.get("qwen2", "small", "F32")
    expected = qwen2_reference_tokenizer(path)(text)
    assert apr_prompt_ids(apr, path, text) == expected


@pytest.mark.parametrize("text", TEXTS)
def test_llama_prompt_ids(apr, models, text):
    path = models.get("llama", "small", "F32")
    r = GGUFReader(str(path))
    expected = [1] + spm_encode(text, strings(r, "tokenizer.ggml.tokens"),
                                strings(r, "tokenizer.ggml.scores"))  # fmt: skip
    assert apr_prompt_ids(apr, path, text) == expected
