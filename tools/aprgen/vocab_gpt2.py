# SPDX-License-Identifier: MIT
"""Byte-level BPE vocabulary in the GPT-2 byte alphabet, Qwen2 style."""

import re
from collections import Counter
from dataclasses import dataclass, field

from .bpe import learn_merges
from .corpus import SAMPLE_TEXT

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 5, 6

GPT2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# The Qwen2 pre-tokenizer spelled for Python's re: \p{L} is [^\W\d_], \p{N} is \d, and "neither
# letter nor digit" is [\W_]. Only the learned merges depend on it, never a file's validity.
_LETTER = r"[^\W\d_]"
_OTHER = r"[\W_]"
QWEN2_SPLIT = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    rf"|(?:(?![\r\n]){_OTHER})?{_LETTER}+"
    r"|\d"
    rf"| ?(?:(?!\s){_OTHER})+[\r\n]*"
    r"|\s*[\r\n]+"
    r"|\s+(?!\S)"
    r"|\s+"
)


def byte_to_unicode() -> dict[int, str]:
    """The GPT-2 byte map: printable bytes keep their code point, the other 68 go to U+0100..."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(0x100 + extra)
            extra += 1
    return mapping


@dataclass
class Vocab:
    tokens: list[str]
    token_types: list[int]
    scores: list[float]
    merges: list[str] = field(default_factory=list)
    special_ids: dict[str, int] = field(default_factory=dict)


def _pretokenize(text: str) -> list[str]:
    pieces = []
    for match in QWEN2_SPLIT.finditer(text):
        pieces.append(match.group(0))
    return pieces


def build_gpt2_vocab(vocab_size: int) -> Vocab:
    byte_map = byte_to_unicode()
    n_fixed = 256 + len(GPT2_SPECIALS)
    if vocab_size < n_fixed:
        raise ValueError(f"gpt2 vocab needs at least {n_fixed} tokens, got {vocab_size}")

    words = Counter()
    for piece in _pretokenize(SAMPLE_TEXT):
        words[tuple(byte_map[b] for b in piece.encode("utf-8"))] += 1
    merges = learn_merges(words, vocab_size - n_fixed)

    tokens = [byte_map[b] for b in range(256)]
    tokens += [a + b for a, b in merges]
    types = [TOKEN_NORMAL] * len(tokens)
    special_ids = {}
    for special in GPT2_SPECIALS:
        special_ids[special] = len(tokens)
        tokens.append(special)
        types.append(TOKEN_CONTROL)
    while len(tokens) < vocab_size:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(TOKEN_UNUSED)
    if len(set(tokens)) != len(tokens):
        raise AssertionError("gpt2 vocab has duplicate tokens")
    return Vocab(
        tokens=tokens,
        token_types=types,
        scores=[0.0] * len(tokens),
        merges=[f"{a} {b}" for a, b in merges],
        special_ids=special_ids,
    )
