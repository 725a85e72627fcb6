# SPDX-License-Identifier: MIT
"""Benchmarks apr: prefill and decode tok/s per model, weight type and backend.

Generates the models it needs with tools/gen_model.py (cached in --models-dir), runs
`apr bench --json` (which discards a warm-up run and reports the median of --repetitions runs),
and prints a Markdown table ready for docs/PERFORMANCE.md. Every backend is measured in the same
invocation, so ratios between them come from one run on one machine.

  .venv/bin/python tools/bench.py --preset qwen2.5-0.5b --types Q8_0 Q4_K_M F16 --backends cpu vulkan
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def ensure_model(models_dir: Path, arch: str, preset: str, file_type: str) -> Path:
    path = models_dir / f"{arch}-{preset}-{file_type.lower()}.gguf"
    if not path.exists():
        models_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(REPO / "tools" / "gen_model.py"), "--arch", arch,
                        "--preset", preset, "--type", file_type, "--out", str(path)], check=True)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--apr", default=str(REPO / "build" / "bin" / "apr"))
    ap.add_argument("--arch", default="qwen2", choices=["qwen2", "llama"])
    ap.add_argument("--preset", default="qwen2.5-0.5b")
    ap.add_argument("--types", nargs="+", default=["Q8_0"])
    ap.add_argument("--backends", nargs="+", default=["cpu"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=32)
    ap.add_argument("--repetitions", type=int, default=5)
    ap.add_argument("--models-dir", default=str(REPO / "models"))
    ap.add_argument("--json-out", help="also write all raw results to this file")
    args = ap.parse_args()

    rows, raw = [], []
    for file_type in args.types:
        model = ensure_model(Path(args.models_dir), args.arch, args.preset, file_type)
        for backend in args.backends:
            cmd = [args.apr, f"--backend={backend}", f"--threads={args.threads}", "bench",
                   str(model), "--prompt-tokens", str(args.prompt_tokens), "--gen-tokens",
                   str(args.gen_tokens), "--repetitions", str(args.repetitions), "--json"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"skipped {backend} {file_type}: {proc.stderr.strip()}", file=sys.stderr)
                continue
            tests = json.loads(proc.stdout)  # one object per test, llama-bench's fields
            raw.append(tests)
            pre = next((t for t in tests if t["n_prompt"]), None)
            dec = next((t for t in tests if t["n_gen"]), None)
            rows.append((file_type, backend, tests[0]["device"], pre, dec))

    print(f"apr bench: {args.arch} {args.preset}, prompt {args.prompt_tokens} tokens, "
          f"decode {args.gen_tokens} tokens, median of {args.repetitions} runs after 1 warm-up; "
          f"threads={args.threads or 'all'}; host {platform.processor() or platform.machine()}\n")
    print("| type | backend | device | prefill tok/s (median, min–max) | decode tok/s (median, min–max) |")
    print("|---|---|---|---|---|")
    for file_type, backend, device, pre, dec in rows:
        fmt = lambda t: (f"{statistics.median(t['samples_ts']):.1f} ({min(t['samples_ts']):.1f}–"
                         f"{max(t['samples_ts']):.1f})" if t else "—")
        print(f"| {file_type} | {backend} | {device} | {fmt(pre)} | {fmt(dec)} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(raw, indent=2))
    return 0 if rows else 2


if __name__ == "__main__":
    sys.exit(main())
