# SPDX-License-Identifier: MIT
"""Writes a random-weight llama or qwen2 GGUF model for apr's tests.

Same arguments give a byte-identical file. Example:
  gen_model.py --arch qwen2 --preset tiny --type Q8_0 --out /tmp/qwen2-tiny-q8_0.gguf
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aprgen.config import ARCH_DEFAULTS, PRESETS, make_config  # noqa: E402
from aprgen.quantize import FILE_TYPES  # noqa: E402
from aprgen.writer import write_model  # noqa: E402

DEFAULT_SEED = 1234


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--arch", choices=sorted(ARCH_DEFAULTS), default="qwen2")
    p.add_argument("--preset", choices=list(PRESETS), default="tiny")
    p.add_argument("--type", dest="file_type", choices=FILE_TYPES, default="F32")
    p.add_argument("--out", required=True, help="path of the GGUF file to write")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--tokenizer", choices=["gpt2", "llama"],
                   help="default: gpt2 for qwen2, llama for llama")
    tied = p.add_mutually_exclusive_group()
    tied.add_argument("--tied", dest="tied", action="store_true", default=None,
                      help="no output.weight: the head reuses token_embd (qwen2.5-0.5b default)")
    tied.add_argument("--untied", dest="tied", action="store_false",
                      help="write a separate output.weight (tiny/small default)")
    for name in ("hidden", "layers", "heads", "kv-heads", "ffn", "vocab", "ctx"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--rope-base", type=float)
    p.add_argument("--eps", type=float)
    p.add_argument("--rope-freqs", action="store_true", default=None,
                   help="llama only: add rope_freqs.weight (Llama 3.1+ RoPE frequency divisors)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = make_config(
            args.arch, args.preset, args.file_type, args.seed,
            hidden=args.hidden, layers=args.layers, heads=args.heads, kv_heads=args.kv_heads,
            ffn=args.ffn, vocab=args.vocab, ctx=args.ctx, rope_base=args.rope_base,
            eps=args.eps, tied=args.tied, tokenizer=args.tokenizer, rope_freqs=args.rope_freqs,
        )  # fmt: skip
    except ValueError as e:
        print(f"gen_model: {e}", file=sys.stderr)
        return 2
    start = time.monotonic()
    write_model(cfg, args.out)
    print(f"wrote {args.out} ({cfg.arch}, {cfg.preset}, {cfg.file_type}) "
          f"in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
