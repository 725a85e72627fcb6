# SPDX-License-Identifier: MIT
"""Cross-checks apr's tokenizer against Hugging Face `tokenizers` on the same vocabularies.

Vocabularies come from GGUF files: two written here with gguf.GGUFWriter from merges learned on
an embedded English + code + CJK sample (byte-level BPE, written with each supported pre:
`qwen2`, `llama-bpe`, `gpt-2`, `default`; and a SentencePiece BPE), plus the vocabularies tools/gen_model.py embeds in
its test models. Each file is read back with gguf.GGUFReader, an equivalent HF tokenizer is
built from what it holds (ByteLevel BPE + the pre-tokenizer's Split regex; for SentencePiece a
BPE model with byte fallback and a Metaspace-like normalizer, as llama's tokenizer.json has),
and the ids of many strings are compared with those of tests/tokenizer/tokenize_cli.

Exit status 0 when every id sequence agrees and apr's decode restores every text; 1 otherwise.
"""

import argparse
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

try:
    import gguf
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers)
except ImportError as e:  # CTest reports exit status 77 as skipped, with this reason
    print(f"SKIPPED: {e} (install tools/requirements.txt)")
    sys.exit(77)

SPACE = "\u2581"
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_BYTE = 1, 2, 3, 4, 6

# llama.cpp's spelling of the contractions (ASCII case-insensitive only); the rest is the
# regex of Qwen2's tokenizer.json. Llama 3 differs only in \p{N}{1,3}.
CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
QWEN2_REGEX = (CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = QWEN2_REGEX.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# llama.cpp's "default" pre-tokenizer: four regexes applied in turn, each splitting the pieces
# of the previous one; text between matches stays a piece, as HF's "isolated" Split keeps it.
DEFAULT_REGEXES = [r"[\p{P}\$\+<=>\^~\|]+",
                   r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
                   r"\p{N}+", r"[0-9][0-9][0-9]"]
SPLIT_REGEX = {"qwen2": [QWEN2_REGEX], "llama-bpe": [LLAMA3_REGEX], "gpt-2": [GPT2_REGEX],
               "default": DEFAULT_REGEXES}


def splitter(pre: str) -> "pre_tokenizers.PreTokenizer":
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r), behavior="isolated")
                                    for r in SPLIT_REGEX[pre]])

SAMPLE = """\
The quick brown fox jumps over the lazy dog. It's a small test, isn't it? We'll see: they've
said you'd know what I'm doing. THE END... or is it?! Numbers like 12345, 3.14159 and 2024-11-25
appear in text: 2024, 2025, 1999, 100, 200, 300, 1000, 2000, 123456; so do prices ($19.99), emails (someone@example.com) and URLs (https://example.org/a?b=c).

def tokenize(text: str) -> list[int]:
    # Split the text, then merge pairs by rank.
    pieces = [p for p in text.split(" ") if p]
    return [vocab[p] for p in pieces if p in vocab]

for (int i = 0; i < n; ++i) {
    total += values[i] * weights[i];  // accumulate
}
if (x != nullptr && x->next) { return x->next->value; }

人工智能是计算机科学的一个分支，它企图了解智能的实质，并生产出一种新的能以人类智能相似的方式做出反应的智能机器。
今日は良い天気ですね。東京の桜はとても綺麗です。
한국어 문장도 조금 있습니다. Привет, мир! Ça va très bien, merci. Größe, naïve café.

Tabs\tand  double  spaces,   triple spaces, trailing spaces   
and blank lines


end.
"""

EXTRA_STRINGS = [
    "Hello world", "hello, world!", "I'm here", "I'M HERE", "you're", "YOU'RE", "they'll've",
    "1234567890", " 1234567 ", "3.14159", "x  \n\n  y", "a\tb  ", "\t\tx", "a\r\nb", "\n\n\n",
    "   ", " ", "trailing   ", "  leading", "e\u0301t\u00e9", "caf\u00e9 na\u00efve", "\u0661\u0662\u0663",
    "\uff11\uff12\uff13", "x\u00b2+y\u00b2", "\u2163 kings", "\u00a0nbsp\u00a0here", "ideo\u3000space",
    "em\u2003space", "\U0001F600\U0001F64F", "\U0001F469\u200D\U0001F4BB code", "\u4eba\u5de5\u667a\u80fd",
    "\u4eca\u65e5\u306f", "\ud55c\uad6d\uc5b4", "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>", "a<|im_end|>b", "<s>hello</s>", "for (int i = 0; i < n; ++i) {\n    x += i;\n}",
    "!!!???...", "$$$ +++ === ^^^ ~~~ |||", "\u00ab quoted \u00bb \u2014 dash \u2026", "\u20ac5 \u00a9 \u2192 \u2211",
    "don't stop", "'s 't 're", "''", "A'B'C", "mixed123abc456", "_under_score_", "#include <stdio.h>",
]

POOLS = [
    [chr(c) for c in range(0x20, 0x7F)] * 6,
    [chr(c) for c in range(0xC0, 0x100) if c not in (0xD7, 0xF7)],
    [chr(c) for c in range(0x391, 0x3AA) if c != 0x3A2],
    [chr(c) for c in range(0x410, 0x450)],
    [chr(c) for c in range(0x4E00, 0x9FA6, 37)],
    [chr(c) for c in range(0x3041, 0x3097)],
    [chr(c) for c in range(0xAC00, 0xD7A4, 101)],
    [chr(c) for c in range(0x1F600, 0x1F650)],
    [chr(c) for c in range(0x300, 0x370)],
    [chr(c) for c in range(0x660, 0x66A)] + ["\u00b2", "\u00b3", "\u2163", "\uff11"],
    [" ", " ", " ", "\n", "\t", "\r", "\u00a0", "\u3000", "\u2003", "\n\n", "  "],
    ["\u3002", "\u3001", "\u00ab", "\u00bb", "\u2014", "\u2026", "\u20ac", "\u00a9", "\u2192", "'s", "'ll"],
]


def random_strings(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        n = rng.randint(1, 40)
        out.append("".join(rng.choice(rng.choice(POOLS)) for _ in range(n)))
    return out


# ---------------------------------------------------------------------------------------------
# Vocabularies learned here


def byte_map() -> dict[int, str]:
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping = {b: chr(b) for b in keep}
    moved = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(0x100 + moved)
            moved += 1
    return mapping


def learn_merges(words: Counter, count: int) -> list[tuple[str, str]]:
    """Textbook BPE training: merge the most frequent adjacent pair, ties by the pair's text."""
    words = {tuple(w): n for w, n in words.items()}
    merges = []
    while len(merges) < count:
        pairs = Counter()
        for word, n in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + n
        words = merged
    return merges


def write_byte_level_gguf(path: Path, pre: str) -> None:
    split = splitter(pre)
    bmap = byte_map()
    words = Counter()
    for piece, _ in split.pre_tokenize_str(SAMPLE):
        words[tuple(bmap[b] for b in piece.encode("utf-8"))] += 1
    merges = learn_merges(words, 300)
    tokens = [bmap[b] for b in range(256)]
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    types = [TOKEN_NORMAL] * len(tokens)
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]:
        tokens.append(special)
        types.append(TOKEN_CONTROL)
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", pre)
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_array("tokenizer.ggml.merges", [f"{a} {b}" for a, b in merges])
    w.add_uint32("tokenizer.ggml.bos_token_id", tokens.index("<|endoftext|>"))
    w.add_uint32("tokenizer.ggml.eos_token_id", tokens.index("<|im_end|>"))
    w.add_bool("tokenizer.ggml.add_bos_token", False)
    _finish(w)


def write_spm_gguf(path: Path) -> None:
    words = Counter()
    for line in SAMPLE.split("\n"):
        text = SPACE + line.replace(" ", SPACE)
        word = ""
        for ch in text:
            if ch == SPACE and word:
                words[tuple(word)] += 1
                word = ""
            word += ch
        if word:
            words[tuple(word)] += 1
    chars = sorted({ch for w in words for ch in w if ch.isprintable() or ch == SPACE})
    merges = learn_merges(Counter({w: n for w, n in words.items()
                                   if all(c in chars for c in w)}), 300)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL] + [TOKEN_BYTE] * 256
    scores = [0.0] * len(tokens)
    for rank, (a, b) in enumerate(merges):
        if a + b not in tokens:
            tokens.append(a + b)
            types.append(TOKEN_NORMAL)
            scores.append(float(-rank))
    for i, ch in enumerate(chars):
        tokens.append(ch)
        types.append(TOKEN_NORMAL)
        scores.append(float(-1000 - i))
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("tokenizer.ggml.model", "llama")
    w.add_array("tokenizer.ggml.tokens", tokens)
    w.add_array("tokenizer.ggml.scores", scores)
    w.add_array("tokenizer.ggml.token_type", types)
    w.add_uint32("tokenizer.ggml.bos_token_id", 1)
    w.add_uint32("tokenizer.ggml.eos_token_id", 2)
    w.add_uint32("tokenizer.ggml.unknown_token_id", 0)
    _finish(w)


def _finish(w: "gguf.GGUFWriter") -> None:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------------------------
# Reading a GGUF vocabulary and building the equivalent HF tokenizer


def read_vocab(path: Path) -> dict:
    reader = gguf.GGUFReader(str(path))

    def field(key):
        f = reader.fields.get(key)
        if f is None:
            return None
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            if f.types[-1] == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [f.parts[i][0].item() for i in f.data]
        if f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        return f.parts[f.data[0]][0].item()

    tokens = field("tokenizer.ggml.tokens")
    return {
        "model": field("tokenizer.ggml.model"),
        "pre": field("tokenizer.ggml.pre") or "default",
        "tokens": tokens,
        "types": field("tokenizer.ggml.token_type") or [TOKEN_NORMAL] * len(tokens),
        "scores": field("tokenizer.ggml.scores") or [0.0] * len(tokens),
        "merges": field("tokenizer.ggml.merges") or [],
    }


def special_tokens(vocab: dict) -> list[AddedToken]:
    special_types = (TOKEN_CONTROL, TOKEN_UNKNOWN, TOKEN_USER_DEFINED)
    return [AddedToken(t, special=(ty != TOKEN_USER_DEFINED), normalized=False)
            for t, ty in zip(vocab["tokens"], vocab["types"]) if ty in special_types]


def hf_byte_level(vocab: dict) -> Tokenizer:
    ids = {t: i for i, t in enumerate(vocab["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in vocab["merges"]]
    model = models.BPE(vocab=ids, merges=merges, ignore_merges=(vocab["pre"] == "llama-bpe"))
    tok = Tokenizer(model)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        splitter(vocab["pre"]),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(special_tokens(vocab))
    return tok


def hf_spm(vocab: dict) -> Tokenizer:
    ids = {t: i for i, t in enumerate(vocab["tokens"])}
    normal = {t for t, ty in zip(vocab["tokens"], vocab["types"]) if ty == TOKEN_NORMAL}
    score = dict(zip(vocab["tokens"], vocab["scores"]))
    # Every split of a piece into two pieces is a merge, ranked by the piece's score: the rank
    # order then reproduces SentencePiece's "best-scored result first".
    merges = []
    for piece in sorted(normal, key=lambda t: (-score[t], ids[t])):
        for k in range(1, len(piece)):
            if piece[:k] in normal and piece[k:] in normal:
                merges.append((piece[:k], piece[k:]))
    unk = next(t for t, ty in zip(vocab["tokens"], vocab["types"]) if ty == TOKEN_UNKNOWN)
    tok = Tokenizer(models.BPE(vocab=ids, merges=merges, unk_token=unk, byte_fallback=True,
                               fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE),
                                           normalizers.Replace(" ", SPACE)])
    tok.add_special_tokens(special_tokens(vocab))
    return tok


# ---------------------------------------------------------------------------------------------


def apr_encode(cli: str, path: Path, texts: list[str], parse_special: bool) -> list[dict]:
    stdin = "".join(t.encode("utf-8").hex() + "\n" for t in texts)
    flags = ["--no-add-special"] + ([] if parse_special else ["--no-parse-special"])
    run = subprocess.run([cli, str(path)] + flags, input=stdin, capture_output=True, text=True,
                         timeout=300)
    if run.returncode != 0:
        raise RuntimeError(f"tokenize_cli failed on {path}: {run.stderr.strip()}")
    lines = run.stdout.splitlines()
    if len(lines) != len(texts):
        raise RuntimeError(f"tokenize_cli gave {len(lines)} lines for {len(texts)} texts")
    return [json.loads(line) for line in lines]


def check_file(cli: str, path: Path, texts: list[str], label: str) -> int:
    vocab = read_vocab(path)
    if vocab["model"] == "gpt2":
        hf = hf_byte_level(vocab)
    elif vocab["model"] == "llama":
        hf = hf_spm(vocab)
        texts = [t for t in texts if t]  # HF normalizes "" to "", SentencePiece to nothing too
    else:
        raise RuntimeError(f"{path}: unexpected tokenizer model {vocab['model']}")
    specials = [t for t, ty in zip(vocab["tokens"], vocab["types"])
                if ty in (TOKEN_CONTROL, TOKEN_UNKNOWN, TOKEN_USER_DEFINED)]
    failures = 0
    tokens_compared = 0
    for parse_special in (True, False):
        # Not parsing specials is HF's encode_special_tokens: special added tokens are text.
        hf.encode_special_tokens = not parse_special
        results = apr_encode(cli, path, texts, parse_special)
        for text, result in zip(texts, results):
            expected = hf.encode(text, add_special_tokens=False)
            tokens_compared += len(expected.ids)
            if result["ids"] != expected.ids:
                failures += 1
                if failures <= 10:
                    print(f"[{label}] ids differ for {text!r} (parse_special={parse_special})\n"
                          f"  apr: {result['ids']}\n  hf:  {expected.ids}\n"
                          f"  hf tokens: {expected.tokens}")
            has_special = any(s in text for s in specials)
            decoded = bytes.fromhex(result["decoded"]).decode("utf-8", errors="surrogateescape")
            if not has_special and decoded != text:
                failures += 1
                if failures <= 10:
                    print(f"[{label}] decode does not restore {text!r}: got {decoded!r}")
    print(f"[{label}] {vocab['model']}/{vocab['pre']}: {len(vocab['tokens'])} tokens, "
          f"{len(texts)} texts, {tokens_compared} ids compared, {failures} failures")
    return failures


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cli", required=True, help="path of tokenize_cli")
    p.add_argument("--gen-model", help="path of tools/gen_model.py; its vocabularies are checked too")
    p.add_argument("--work-dir", required=True)
    p.add_argument("--random", type=int, default=400, help="number of random strings")
    args = p.parse_args()

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261125)
    texts = SAMPLE.split("\n") + [SAMPLE] + EXTRA_STRINGS + random_strings(rng, args.random)

    files = []
    for pre in ("qwen2", "llama-bpe", "gpt-2", "default"):
        path = work / f"bpe-{pre}.gguf"
        write_byte_level_gguf(path, pre)
        files.append((path, f"sample bpe {pre}"))
    path = work / "spm.gguf"
    write_spm_gguf(path)
    files.append((path, "sample spm"))

    if args.gen_model and Path(args.gen_model).exists():
        for arch, tokenizer in (("qwen2", "gpt2"), ("llama", "llama")):
            path = work / f"gen-{arch}-{tokenizer}.gguf"
            subprocess.run([sys.executable, args.gen_model, "--arch", arch, "--preset", "tiny",
                            "--tokenizer", tokenizer, "--out", str(path)], check=True,
                           capture_output=True)
            files.append((path, f"gen_model {arch}"))
    elif args.gen_model:
        print(f"note: {args.gen_model} not found; checking only the vocabularies written here")

    failures = sum(check_file(args.cli, path, texts, label) for path, label in files)
    print("OK" if failures == 0 else f"FAILED: {failures} mismatches")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
