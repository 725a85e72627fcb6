# SPDX-License-Identifier: MIT
"""SentencePiece-style BPE vocabulary (llama style): <unk>, <s>, </s>, 256 byte tokens, pieces."""

import re
from collections import Counter

from .bpe import learn_merges
from .corpus import SAMPLE_TEXT
from .vocab_gpt2 import TOKEN_BYTE, TOKEN_CONTROL, TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_UNUSED, Vocab

SPACE = "\u2581"
SPM_SPECIALS = {"<unk>": 0, "<s>": 1, "</s>": 2}


def _words(text: str) -> list[str]:
    """SentencePiece-style pieces: every space becomes '▁' and starts a new piece."""
    words = []
    for line in text.split("\n"):
        if line:
            words += re.findall(f"{SPACE}*[^{SPACE}]+|{SPACE}+", SPACE + line.replace(" ", SPACE))
    return words


def _is_piece_char(ch: str) -> bool:
    # Control characters (newline, tab) stay with byte fallback, as in llama's vocabulary.
    return ch.isprintable() or ch == SPACE


def build_spm_vocab(vocab_size: int) -> Vocab:
    n_fixed = len(SPM_SPECIALS) + 256
    if vocab_size < n_fixed + 1:
        raise ValueError(f"llama vocab needs more than {n_fixed} tokens, got {vocab_size}")

    words = _words(SAMPLE_TEXT)
    char_counts = Counter(ch for w in words for ch in w if _is_piece_char(ch))
    # Single characters that do not fit the vocabulary fall back to bytes.
    ranked_chars = sorted(char_counts, key=lambda c: (-char_counts[c], c))
    chars = ranked_chars[: vocab_size - n_fixed]
    char_set = set(chars)

    # Words are cut at characters outside the vocabulary so every merge has both halves in it.
    segments = Counter()
    for w in words:
        for seg in re.split("|".join(map(re.escape, set(w) - char_set)) or "$^", w):
            if len(seg) > 1:
                segments[tuple(seg)] += 1
    merges = learn_merges(segments, vocab_size - n_fixed - len(chars))

    tokens = list(SPM_SPECIALS)
    types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL]
    scores = [0.0, 0.0, 0.0]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(TOKEN_BYTE)
        scores.append(0.0)
    # Scores decrease with the merge rank; single characters rank below every merged piece so
    # they are never preferred, as in SentencePiece's own BPE vocabularies.
    seen = set(tokens)
    rank = 0
    for piece in [a + b for a, b in merges] + chars:
        if piece in seen:
            continue
        seen.add(piece)
        tokens.append(piece)
        types.append(TOKEN_NORMAL)
        scores.append(float(-rank))
        rank += 1
    while len(tokens) < vocab_size:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(TOKEN_UNUSED)
        scores.append(-1e9)
    return Vocab(tokens=tokens, token_types=types, scores=scores, special_ids=dict(SPM_SPECIALS))
