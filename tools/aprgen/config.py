# SPDX-License-Identifier: MIT
"""Model shapes: the presets and the checks that a combination of overrides is buildable."""

from dataclasses import dataclass, replace

PRESETS = {
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=512, ctx=256),
    "small": dict(hidden=256, layers=4, heads=8, kv_heads=2, ffn=704, vocab=2048, ctx=1024),
    "qwen2.5-0.5b": dict(
        hidden=896, layers=24, heads=14, kv_heads=2, ffn=4864, vocab=151936, ctx=32768,
        rope_base=1e6, eps=1e-6, tied=True,
    ),
}  # fmt: skip

# Per-architecture defaults the presets do not fix: Qwen2 files use base 1e6, eps 1e-6 and the
# gpt2 tokenizer; Llama-2 files use base 1e4, eps 1e-5 and SPM. The head is untied unless asked
# for: with random weights a tied head scores the current token's own embedding highest, so greedy
# decoding repeats the last prompt token forever and the generated ids test nothing.
ARCH_DEFAULTS = {
    "qwen2": dict(rope_base=1e6, eps=1e-6, tied=False, tokenizer="gpt2"),
    "llama": dict(rope_base=1e4, eps=1e-5, tied=False, tokenizer="llama"),
}


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    preset: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    ctx: int
    rope_base: float
    eps: float
    tied: bool
    tokenizer: str
    seed: int
    file_type: str
    rope_freqs: bool = False  # write rope_freqs.weight, Llama 3.1's per-pair RoPE divisors

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


def make_config(arch: str, preset: str, file_type: str, seed: int, **overrides) -> ModelConfig:
    if arch not in ARCH_DEFAULTS:
        raise ValueError(f"unknown arch {arch!r}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}")
    values = dict(ARCH_DEFAULTS[arch])
    values.update(PRESETS[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    cfg = ModelConfig(arch=arch, preset=preset, seed=seed, file_type=file_type, **values)
    validate(cfg)
    return cfg


def validate(cfg: ModelConfig) -> None:
    for field in ("hidden", "layers", "heads", "kv_heads", "ffn", "vocab", "ctx"):
        if getattr(cfg, field) <= 0:
            raise ValueError(f"--{field.replace('_', '-')} must be positive")
    if cfg.hidden % cfg.heads:
        raise ValueError(f"hidden {cfg.hidden} is not a multiple of heads {cfg.heads}")
    if cfg.heads % cfg.kv_heads:
        raise ValueError(f"heads {cfg.heads} is not a multiple of kv-heads {cfg.kv_heads}")
    if cfg.head_dim % 2:
        raise ValueError(f"head dim {cfg.head_dim} must be even for RoPE")
    if cfg.rope_freqs and cfg.arch != "llama":
        raise ValueError("--rope-freqs exists for llama models only (Llama 3.1+)")
    if cfg.tokenizer not in ("gpt2", "llama"):
        raise ValueError(f"unknown tokenizer {cfg.tokenizer!r}")


def with_overrides(cfg: ModelConfig, **changes) -> ModelConfig:
    out = replace(cfg, **changes)
    validate(out)
    return out
