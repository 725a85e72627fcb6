# SPDX-License-Identifier: MIT
"""A stand-in for `apr run` and `apr trace` built on the reference, used only to prove that
test_model_logits.py and test_trace_cli.py pass a correct engine and fail a wrong one.

$FAKE_APR_NOISE adds that much uniform noise to the dumped logits; $FAKE_APR_WRONG_TOKEN makes
the first generated id differ from the argmax.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
import ref_forward as ref  # noqa: E402


def trace(a) -> int:
    """`apr trace MODEL --tokens IDS --save-tensor all --save-tensor-dir DIR`: the reference
    trace of every layer, with the same optional noise."""
    tokens = [int(t) for t in a.tokens.split(",")]
    stages = ref.forward(a.model, tokens, trace=True)["stages"]
    noise = float(os.environ.get("FAKE_APR_NOISE", "0"))
    rng = np.random.default_rng(0)
    stages = {k: v + rng.uniform(-noise, noise, v.shape) for k, v in stages.items()}
    ref.write_trace(stages, Path(a.save_tensor_dir))
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="cpu")
    p.add_argument("verb", choices=["run", "trace"])
    p.add_argument("model")
    p.add_argument("--tokens", required=True)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--dump-logits")
    p.add_argument("--save-tensor")
    p.add_argument("--save-tensor-dir")
    p.add_argument("--save-tensor-layers")
    a = p.parse_args()
    if a.verb == "trace":
        return trace(a)
    prompt = [int(t) for t in a.tokens.split(",")]
    ids, rows = ref.greedy(a.model, prompt, a.max_tokens)
    rng = np.random.default_rng(0)
    noise = float(os.environ.get("FAKE_APR_NOISE", "0"))
    rows = rows + rng.uniform(-noise, noise, rows.shape)
    if os.environ.get("FAKE_APR_WRONG_TOKEN"):
        ids[0] = int(np.argsort(rows[0])[-3])
    np.save(a.dump_logits, rows.astype(np.float32))
    print(json.dumps({"model": a.model, "backend": a.backend, "prompt_token_ids": prompt,
                      "generated_token_ids": ids, "text": "", "timings": {}}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
