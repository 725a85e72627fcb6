#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Command 1 of the README: install, build, then show apr on a real model in one screen: a chat
# answer from SmolLM2-135M-Instruct (the default model), a trace of that prompt, and a bisect of
# the cpu backend against Vulkan (Mesa's lavapipe where there is no GPU) with its HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
apr=build/bin/apr
question="What is the capital of France?"
out=demo-output
mkdir -p "$out"

echo
echo "== apr run --chat: the default model answers through its chat template (greedy)"
"$apr" --backend cpu run --chat -p "$question" -n 32 --temperature 0

echo
echo "== apr trace: every stage of layer 0 for that prompt (add --save-tensor-layers 0..30 for all)"
"$apr" --backend cpu trace --chat -p "$question" --save-tensor all --save-tensor-dir "$out/trace-cpu"

# Bisect needs a second backend. Vulkan as the machine has it; without a usable device try Mesa's
# software rasterizer lavapipe, as the test suite does.
echo
lavapipe=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
vulkan_usable() { "$apr" --backend vulkan plugins >/dev/null 2>&1 && "$apr" plugins --json 2>/dev/null |
  "${PYTHON:-.venv/bin/python}" -c 'import json,sys; p=[x for x in json.load(sys.stdin)["plugins"] if x["name"]=="vulkan"]; sys.exit(0 if p and p[0].get("devices") else 1)'; }
if ! vulkan_usable && [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f "$lavapipe" ]; then
  export VK_ICD_FILENAMES=$lavapipe
fi
if vulkan_usable; then
  echo "== apr bisect: cpu against vulkan, every stage of all layers, first divergence named"
  status=0
  "$apr" bisect --chat -p "$question" --backend-a cpu --backend-b vulkan \
    --report "$out/bisect.html" | tail -n 4 || status=$?
  [ "$status" -le 1 ] || exit "$status"
  echo "(open $out/bisect.html for the heat map of all 30 layers x 19 stages)"
else
  echo "== apr bisect skipped: no usable Vulkan device (not even lavapipe; see 'apr plugins')"
fi
