# SPDX-License-Identifier: MIT
"""Deterministic pair-count BPE learning, shared by both tokenizer styles.

Each round merges the most frequent adjacent symbol pair; ties go to the lexicographically
smallest pair so the result never depends on dict or set iteration order.
"""

from collections import Counter, defaultdict


def learn_merges(word_counts: Counter, max_merges: int) -> list[tuple[str, str]]:
    """Learns up to max_merges merges from {tuple_of_symbols: count}; stops when no pair is left."""
    words = [list(w) for w in word_counts]
    freqs = [word_counts[w] for w in word_counts]
    pair_counts: Counter = Counter()
    pair_words: dict[tuple[str, str], set[int]] = defaultdict(set)
    for idx, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += freqs[idx]
            pair_words[pair].add(idx)

    merges: list[tuple[str, str]] = []
    while len(merges) < max_merges:
        best = None
        best_count = 0
        for pair, count in pair_counts.items():
            if count > best_count or (count == best_count and count > 0 and pair < best):
                best, best_count = pair, count
        if best is None or best_count <= 0:
            break
        merges.append(best)
        merged = best[0] + best[1]
        for idx in sorted(pair_words.pop(best, ())):
            symbols = words[idx]
            freq = freqs[idx]
            for pair in zip(symbols, symbols[1:]):
                pair_counts[pair] -= freq
            out = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == best[0] and symbols[i + 1] == best[1]:
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            words[idx] = out
            for pair in zip(out, out[1:]):
                pair_counts[pair] += freq
                pair_words[pair].add(idx)
        pair_counts.pop(best, None)
    return merges
