#!/usr/bin/env bash
# Command 1 of the README: install, build, make the demo model and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
model=models/demo-qwen2-small-q8_0.gguf
if [ ! -f "$model" ]; then
  mkdir -p models
  .venv/bin/python tools/gen_model.py --arch qwen2 --preset small --type Q8_0 --out "$model"
fi
build/bin/apr plugins
echo
echo "apr: running the demo model (random weights, so the text is gibberish by design)"
build/bin/apr run "$model" --prompt "The capital of France is" --max-tokens 32 --seed 42
