#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Turns the JSON files written by tools/bench-vs-llama.sh into the side-by-side table.

Each file holds one invocation of llama-bench (-o json) or `apr bench --json`, named
RESULTS/<model>.<tool>.<rep>.json, where tool is "llama" or an apr variant ("apr", "apr-f32", "apr-q8").
For every model, tool and test (ppN / tgN, "@ dD" at a depth) the median over the repetitions of
the runs' mean tokens per second is taken; llama.cpp's rows are kept apart per flash-attention
setting and each cell shows the faster one; the table shows the medians and each apr variant /
llama.cpp.

  tools/bench_vs_llama.py RESULTS_DIR [--order Q8_0 Q4_K_M ...]
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def test_name(row: dict) -> str:
    name = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
    return name + (f" @ d{row['n_depth']}" if row.get("n_depth") else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--order", nargs="*", default=[], help="model labels in table order")
    ap.add_argument("--roofline", type=float, help="measured read bandwidth in GB/s: adds each "
                    "apr variant's decode weight traffic (tok/s x model bytes) as a fraction of it")
    args = ap.parse_args()

    # tps[model][tool][test] = [per-repetition mean tok/s]
    tps = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    size = {}  # model bytes: decode reads every weight once per token
    for f in sorted(args.results.glob("*.json")):
        model, tool, _rep = f.name[: -len(".json")].rsplit(".", 2)
        text = f.read_text()
        if not text.strip():
            print(f"bench_vs_llama: {f}: empty (a run still going, or killed), left out",
                  file=sys.stderr)
            continue
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            print(f"bench_vs_llama: {f}: not JSON ({e})", file=sys.stderr)
            return 2
        for row in rows:
            if row.get("trace_sink", "none") != "none":
                continue
            # llama.cpp's flash-attention settings are kept apart; each cell then takes the
            # faster of them (llama-bench -fa 0,1 runs both).
            key = tool
            if tool == "llama" and "flash_attn" in row:
                key = f"llama-fa{int(row['flash_attn'])}"
            tps[model][key][test_name(row)].append(float(row["avg_ts"]))
            size[model] = int(row["model_size"])

    models = [m for m in args.order if m in tps] + sorted(m for m in tps if m not in args.order)
    tests = sorted({t for m in tps.values() for tool in m.values() for t in tool},
                   key=lambda t: (not t.startswith("pp"), t))
    variants = sorted({tool for m in tps.values() for tool in m if not tool.startswith("llama")})

    def llama_best(m, t):
        """(median tok/s, its -fa setting or "") of llama.cpp's fastest setting for the cell."""
        best = (None, "")
        for tool, tests_ in tps[m].items():
            if tool.startswith("llama") and tests_.get(t):
                med = statistics.median(tests_[t])
                if best[0] is None or med > best[0]:
                    best = (med, tool[len("llama-"):] if tool != "llama" else "")
        return best

    head = "| file |"
    rule = "|---|"
    for t in tests:
        head += f" llama.cpp {t} |" + "".join(f" {v} {t} | ratio |" for v in variants)
        rule += "---:|" + "---:|---:|" * len(variants)
    print(head)
    print(rule)
    for m in models:
        line = f"| {m} |"
        for t in tests:
            a, fa = llama_best(m, t)
            line += f" {a:.1f}{' (' + fa + ')' if fa else ''} |" if a else " – |"
            for v in variants:
                ours = tps[m][v].get(t, [])
                b = statistics.median(ours) if ours else None
                line += f" {b:.1f} |" if b else " – |"
                line += f" {b / a:.2f}× |" if a and b else " – |"
        print(line)
    n = max((len(v) for m in tps.values() for tool in m.values() for v in tool.values()),
            default=0)
    print(f"\nmedian of {n} interleaved repetitions per cell; tok/s; llama.cpp: its faster "
          "flash-attention setting where both ran (fa0/fa1 in brackets)")
    if args.roofline:
        print(f"\n| file | model MB | " + " | ".join(
            f"{v} decode GB/s | of {args.roofline:.1f} GB/s" for v in ["llama"] + variants) + " |")
        print("|---|---:|" + "---:|---:|" * (1 + len(variants)))
        for m in models:
            line = f"| {m} | {size[m] / 1e6:.0f} |"
            # Decode at depth 0 (weights dominate there): llama.cpp's faster setting per test.
            tg_tests = [t for t in tests if t.startswith("tg") and "@" not in t]
            for v in ["llama"] + variants:
                if v == "llama":
                    tg = [x for t in tg_tests if (x := llama_best(m, t)[0])]
                else:
                    tg = [x for t in tg_tests for x in tps[m][v].get(t, [])]
                gbs = statistics.median(tg) * size[m] / 1e9 if tg else None
                line += f" {gbs:.1f} | {100 * gbs / args.roofline:.0f} % |" if gbs else " – | – |"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
