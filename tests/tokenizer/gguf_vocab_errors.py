# SPDX-License-Identifier: MIT
"""Malformed tokenizer metadata in GGUF files must give one-line errors naming the file and the
key (and index), never a crash: each case is written with gguf.GGUFWriter and fed to
tokenize_cli, which must exit with status 2 and that message on stderr. A valid file is
checked too, so that the harness itself can tell success from failure.
"""

import argparse
import subprocess
import sys
from pathlib import Path

try:
    import gguf
except ImportError as e:  # CTest reports exit status 77 as skipped, with this reason
    print(f"SKIPPED: {e} (install tools/requirements.txt)")
    sys.exit(77)

BYTE_TOKENS = [chr(c) for c in range(0x21, 0x7F)]


def write(path: Path, kv: dict) -> None:
    w = gguf.GGUFWriter(str(path), "qwen2")
    for key, value in kv.items():
        if isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, str):
            w.add_string(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        else:
            w.add_array(key, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def good_gpt2() -> dict:
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen2",
        "tokenizer.ggml.tokens": BYTE_TOKENS + ["ab", "abc"],
        "tokenizer.ggml.merges": ["a b", "ab c"],
    }


def good_spm() -> dict:
    """A SentencePiece vocabulary with byte fallback (<0x00>..<0xFF>), as Gemma's and Phi-3's."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581a", "b"]
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": [0.0] * (len(tokens) - 2) + [-1.0, -2.0],
        "tokenizer.ggml.token_type": [2, 3, 3] + [6] * 256 + [1, 1],
    }


def without(kv: dict, key: str) -> dict:
    return {k: v for k, v in kv.items() if k != key}


CASES = [
    # name, metadata, expected fragments of the error line
    ("unknown model", {**good_gpt2(), "tokenizer.ggml.model": "bert"},
     ["tokenizer.ggml.model", "'bert'"]),
    ("missing model", without(good_gpt2(), "tokenizer.ggml.model"),
     ["tokenizer.ggml.model", "missing"]),
    ("missing tokens", without(good_gpt2(), "tokenizer.ggml.tokens"),
     ["tokenizer.ggml.tokens", "missing"]),
    ("merge without separator", {**good_gpt2(), "tokenizer.ggml.merges": ["a b", "abc"]},
     ["tokenizer.ggml.merges[1]"]),
    ("merge with empty right side", {**good_gpt2(), "tokenizer.ggml.merges": ["a b", "q ", "x y"]},
     ["tokenizer.ggml.merges[1]"]),
    ("gpt2 without merges", without(good_gpt2(), "tokenizer.ggml.merges"),
     ["tokenizer.ggml.merges", "missing"]),
    ("unknown pre-tokenizer", {**good_gpt2(), "tokenizer.ggml.pre": "made-up"},
     ["tokenizer.ggml.pre", "'made-up'"]),
    ("scores of the wrong length", {**good_gpt2(), "tokenizer.ggml.scores": [0.5, 1.5]},
     ["tokenizer.ggml.scores"]),
    ("token types of the wrong length", {**good_gpt2(), "tokenizer.ggml.token_type": [1, 1, 1]},
     ["tokenizer.ggml.token_type"]),
    ("tokens of the wrong type", {**good_gpt2(), "tokenizer.ggml.tokens": [1, 2, 3]},
     ["tokenizer.ggml.tokens"]),
    ("bos id of the wrong type", {**good_gpt2(), "tokenizer.ggml.bos_token_id": "one"},
     ["tokenizer.ggml.bos_token_id"]),
    ("byte fallback without <0x41>",
     {**good_spm(), "tokenizer.ggml.tokens": [t if t != "<0x41>" else "<0x41>?"
                                              for t in good_spm()["tokenizer.ggml.tokens"]]},
     ["tokenizer.ggml.tokens", "byte-fallback", "<0x41>"]),
    ("scores that are strings", {**good_spm(), "tokenizer.ggml.scores":
                                 ["x"] * len(good_spm()["tokenizer.ggml.tokens"])},
     ["tokenizer.ggml.scores"]),
    ("token types that are strings", {**good_spm(), "tokenizer.ggml.token_type":
                                      ["x"] * len(good_spm()["tokenizer.ggml.tokens"])},
     ["tokenizer.ggml.token_type"]),
    ("spm scores of the wrong length", {**good_spm(), "tokenizer.ggml.scores": [0.5]},
     ["tokenizer.ggml.scores", "1 entries"]),
    ("general.name of the wrong type", {**good_spm(), "general.name": 7},
     ["general.name"]),
    ("tekken without merges", without({**good_gpt2(), "tokenizer.ggml.pre": "tekken"},
                                      "tokenizer.ggml.merges"),
     ["tokenizer.ggml.merges", "missing"]),
]


def run(cli: str, path: Path, text: str = "abc") -> subprocess.CompletedProcess:
    return subprocess.run([cli, str(path)], input=text.encode().hex() + "\n", capture_output=True,
                          text=True, timeout=60)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cli", required=True)
    p.add_argument("--work-dir", required=True)
    args = p.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    failures = 0

    for name, kv in [("good", good_gpt2()), ("good-spm", good_spm()),
                     ("good-tekken", {**good_gpt2(), "tokenizer.ggml.pre": "tekken"})]:
        good = work / f"{name}.gguf"
        write(good, kv)
        result = run(args.cli, good)
        if result.returncode != 0 or '"ids": [' not in result.stdout:
            print(f"valid file {name}: expected ids, got status {result.returncode}: "
                  f"{result.stderr.strip()}")
            failures += 1

    for i, (name, kv, fragments) in enumerate(CASES):
        path = work / f"bad-{i}.gguf"
        write(path, kv)
        result = run(args.cli, path)
        lines = result.stderr.strip().splitlines()
        message = lines[0] if lines else ""
        ok = (result.returncode == 2 and len(lines) == 1 and str(path) in message
              and all(f in message for f in fragments))
        print(f"{'ok  ' if ok else 'FAIL'} {name}: status {result.returncode}: {message}")
        failures += 0 if ok else 1
    print("OK" if failures == 0 else f"FAILED: {failures}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
