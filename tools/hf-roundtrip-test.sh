#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Opt-in end-to-end test of tracing against Hugging Face transformers: for qwen2 and llama, make a
# small randomly initialised transformers model with a byte-level BPE tokenizer, convert it with
# tools/hf_to_gguf.py, trace it with tools/hf_trace.py, and require `apr bisect --reference` on
# the CPU backend to be clean at cosine 0.99999. A perturbed backend must then be caught, so the
# check is known to be able to fail.
#
# Needs torch and transformers, which the default environment does not have:
#   HF_PYTHON=/path/to/python-with-torch-and-transformers tools/hf-roundtrip-test.sh
# APR_BIN (default build/bin/apr) and APR_TEST_PLUGIN_DIR (default: test-plugins beside bin/, for
# the cpu-fault plugin) may be set. Exit status 0 when every check passes.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${HF_PYTHON:-python3}"
apr="${APR_BIN:-$repo/build/bin/apr}"
plugin_dir="${APR_TEST_PLUGIN_DIR:-$(dirname "$apr")/../test-plugins}"
work="$(mktemp -d "${TMPDIR:-/tmp}/apr-hf-roundtrip-XXXXXX")"
trap 'rm -rf "$work"' EXIT

if ! "$py" -c "import torch, transformers, safetensors, tokenizers, gguf" 2>/dev/null; then
  echo "hf-roundtrip-test: $py lacks torch, transformers, safetensors, tokenizers or gguf" >&2
  echo "  (set HF_PYTHON to an interpreter that has them)" >&2
  exit 2
fi
[[ -x "$apr" ]] || { echo "hf-roundtrip-test: no apr binary at $apr (set APR_BIN)" >&2; exit 2; }

make_model() {  # make_model ARCH DIR
  "$py" - "$1" "$2" <<'PY'
import sys
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

arch, out = sys.argv[1], sys.argv[2]
corpus = ["What is 2+2? It is 4.", "The quick brown fox jumps over the lazy dog.",
          "Tracing finds the first layer and stage where a backend goes wrong."] * 20
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.train_from_iterator(corpus, trainers.BpeTrainer(
    vocab_size=320, special_tokens=["<|endoftext|>"],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                               bos_token="<|endoftext|>")
fast.save_pretrained(out)
vocab = 336  # a little above the tokenizer's size: the converter pads
cfg = AutoConfig.for_model(
    arch, vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=(arch == "qwen2"),
    bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
torch.manual_seed(7)
model = AutoModelForCausalLM.from_config(cfg)
# Default init leaves norms at 1 and biases at 0, which would hide mistakes in either.
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.2 * torch.randn_like(p))
        else:
            p.copy_(0.15 * torch.randn_like(p))
model.save_pretrained(out, safe_serialization=True)
PY
}

fail=0
for arch in qwen2 llama; do
  hf="$work/$arch-hf"
  echo "== $arch: make a random transformers model"
  make_model "$arch" "$hf"
  echo "== $arch: convert with tools/hf_to_gguf.py"
  "$py" "$repo/tools/hf_to_gguf.py" "$hf" --out "$work/$arch.gguf"
  echo "== $arch: trace with tools/hf_trace.py"
  "$py" "$repo/tools/hf_trace.py" --model "$hf" --prompt "What is 2+2? The quick brown fox." \
    --out "$work/$arch-ref"
  echo "== $arch: apr bisect --reference (must be clean at 0.99999)"
  if "$apr" --plugin-dir="$plugin_dir" bisect "$work/$arch.gguf" --backend-a cpu \
      --reference "$work/$arch-ref" --min-cosine 0.99999 --report "$work/$arch.html"; then
    echo "PASS $arch: clean against transformers"
  else
    echo "FAIL $arch: apr bisect against transformers was not clean"; fail=1
  fi
  if [[ -e "$plugin_dir/apr-plugin-cpu-fault.so" ]]; then
    echo "== $arch: a perturbed backend must be caught"
    set +e
    APR_CPU_FAULT="1:ffn_up:0.05" "$apr" --plugin-dir="$plugin_dir" bisect "$work/$arch.gguf" \
      --backend-a cpu-fault --reference "$work/$arch-ref" --min-cosine 0.99999 --json \
      > "$work/$arch-fault.json"
    rc=$?
    set -e
    if [[ $rc -eq 1 ]] && grep -q '"stage": "ffn_up"' "$work/$arch-fault.json"; then
      echo "PASS $arch: injected fault found at layer 1 ffn_up"
    else
      echo "FAIL $arch: injected fault not named (exit $rc)"; fail=1
    fi
  fi
done
exit $fail
