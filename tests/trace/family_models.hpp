// SPDX-License-Identifier: MIT
// Tiny random-weight F32 models of every family apr runs (llama, qwen2, qwen3, gemma2, gemma3,
// phi3), written as GGUF files by the tests' own writer (tests/gguf/gguf_builder.hpp), with the
// tensors and metadata llama.cpp's converter gives each family:
//   qwen3   attn_q_norm/attn_k_norm [head_dim]
//   gemma2  post_attention_norm/post_ffw_norm, a tied head, sliding window 2 on every other layer
//           (layer 0 slides), attention soft-cap 50 and final soft-cap 30
//   gemma3  QK-norm and the post norms, a tied head, rope.freq_base 1e6 (10000 on the sliding
//           layers), sliding window 2 with the pattern set to 2 so that a two-layer model has a
//           sliding layer 0 and a global layer 1
//   phi3    fused attn_qkv and ffn_up (gate's rows first), LongRoPE short/long factors with an
//           original context of 4 positions and attn_factor 1.25
// A window of 2 and an original context of 4 make the family's operations matter for prompts of
// a few tokens.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gguf_builder.hpp"

namespace apr::trace::testing {

struct FamilyDims {
  uint32_t n_layer = 2, n_embd = 16, n_head = 4, n_head_kv = 2, n_ff = 24, n_ctx = 64;
  uint32_t head_dim() const { return n_embd / n_head; }
};

inline const std::vector<std::string>& family_names() {
  static const std::vector<std::string> names = {"llama",  "qwen2",  "qwen3",
                                                 "gemma2", "gemma3", "phi3"};
  return names;
}

// The GGUF bytes of a tiny model of `arch`; the same arguments give the same bytes.
inline std::vector<uint8_t> family_model_gguf(const std::string& arch, const FamilyDims& d = {},
                                              uint32_t seed = 7) {
  using namespace apr_test;
  const bool gemma = arch == "gemma2" || arch == "gemma3";
  const bool qk_norm = arch == "qwen3" || arch == "gemma3";
  const bool phi3 = arch == "phi3";
  const uint32_t hd = d.head_dim(), q_dim = d.n_head * hd, kv_dim = d.n_head_kv * hd;

  // A SentencePiece vocabulary of 32 pieces: <unk>, <s>, </s>, then letters.
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  while (tokens.size() < 32) tokens.push_back(std::string(1, char('a' + tokens.size() - 3)));
  const uint32_t n_vocab = static_cast<uint32_t>(tokens.size());
  std::vector<float> scores(n_vocab);
  std::vector<int32_t> types(n_vocab, 1);
  for (uint32_t i = 0; i < n_vocab; ++i) scores[i] = -float(i);
  types[0] = 2;
  types[1] = types[2] = 3;

  GgufSpec g;
  const std::string a = arch + ".";
  g.kvs = {kv_string("general.architecture", arch),
           kv_string("general.name", "apr-test-" + arch),
           kv(a + "context_length", kU32, d.n_ctx),
           kv(a + "embedding_length", kU32, d.n_embd),
           kv(a + "block_count", kU32, d.n_layer),
           kv(a + "feed_forward_length", kU32, d.n_ff),
           kv(a + "attention.head_count", kU32, d.n_head),
           kv(a + "attention.head_count_kv", kU32, d.n_head_kv),
           kv(a + "attention.layer_norm_rms_epsilon", kF32v, 1e-6f),
           kv(a + "rope.freq_base", kF32v, arch == "gemma3" ? 1e6f : 10000.0f),
           kv_string("tokenizer.ggml.model", "llama"),
           kv_string_array("tokenizer.ggml.tokens", tokens),
           kv_array("tokenizer.ggml.scores", kF32v, scores),
           kv_array("tokenizer.ggml.token_type", kI32, types),
           kv("tokenizer.ggml.bos_token_id", kU32, uint32_t{1}),
           kv("tokenizer.ggml.eos_token_id", kU32, uint32_t{2})};
  if (arch == "gemma2") {
    g.kvs.push_back(kv(a + "attention.sliding_window", kU32, uint32_t{2}));
    g.kvs.push_back(kv(a + "attn_logit_softcapping", kF32v, 50.0f));
    g.kvs.push_back(kv(a + "final_logit_softcapping", kF32v, 30.0f));
  }
  if (arch == "gemma3") {
    g.kvs.push_back(kv(a + "attention.sliding_window", kU32, uint32_t{2}));
    g.kvs.push_back(kv(a + "attention.sliding_window_pattern", kU32, uint32_t{2}));
  }
  if (phi3) {
    g.kvs.push_back(kv(a + "rope.scaling.original_context_length", kU32, uint32_t{4}));
    g.kvs.push_back(kv(a + "rope.scaling.attn_factor", kF32v, 1.25f));
  }

  std::mt19937 rng(seed);
  auto add = [&](const std::string& name, std::vector<uint64_t> ne, const char* kind) {
    uint64_t n = 1;
    for (uint64_t e : ne) n *= e;
    std::vector<float> v(n);
    if (std::string(kind) == "norm") {
      std::uniform_real_distribution<float> u(0.9f, 1.1f);
      for (float& x : v) x = u(rng);
    } else if (std::string(kind) == "factors") {
      const float step = name.find("long") != std::string::npos ? 2.0f : 0.5f;
      for (uint64_t i = 0; i < n; ++i) v[i] = 1.0f + float(i) * step;
    } else {
      std::normal_distribution<float> nd(
          0.0f, std::string(kind) == "matrix" ? float(1.0 / std::sqrt(double(ne[0]))) : 1.0f);
      for (float& x : v) x = nd(rng);
      if (std::string(kind) == "bias")
        for (float& x : v) x *= 0.1f;
    }
    TensorSpec t{name, std::move(ne), 0, std::vector<uint8_t>(n * 4), std::nullopt, std::nullopt};
    std::memcpy(t.data.data(), v.data(), n * 4);
    g.tensors.push_back(std::move(t));
  };
  add("token_embd.weight", {d.n_embd, n_vocab}, "embedding");
  for (uint32_t l = 0; l < d.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {d.n_embd}, "norm");
    if (phi3) {
      add(p + "attn_qkv.weight", {d.n_embd, q_dim + 2 * kv_dim}, "matrix");
    } else {
      add(p + "attn_q.weight", {d.n_embd, q_dim}, "matrix");
      add(p + "attn_k.weight", {d.n_embd, kv_dim}, "matrix");
      add(p + "attn_v.weight", {d.n_embd, kv_dim}, "matrix");
    }
    if (arch == "qwen2") {
      add(p + "attn_q.bias", {q_dim}, "bias");
      add(p + "attn_k.bias", {kv_dim}, "bias");
      add(p + "attn_v.bias", {kv_dim}, "bias");
    }
    if (qk_norm) {
      add(p + "attn_q_norm.weight", {hd}, "norm");
      add(p + "attn_k_norm.weight", {hd}, "norm");
    }
    add(p + "attn_output.weight", {q_dim, d.n_embd}, "matrix");
    if (gemma) add(p + "post_attention_norm.weight", {d.n_embd}, "norm");
    add(p + "ffn_norm.weight", {d.n_embd}, "norm");
    if (phi3) {
      add(p + "ffn_up.weight", {d.n_embd, 2 * d.n_ff}, "matrix");
    } else {
      add(p + "ffn_gate.weight", {d.n_embd, d.n_ff}, "matrix");
      add(p + "ffn_up.weight", {d.n_embd, d.n_ff}, "matrix");
    }
    add(p + "ffn_down.weight", {d.n_ff, d.n_embd}, "matrix");
    if (gemma) add(p + "post_ffw_norm.weight", {d.n_embd}, "norm");
  }
  add("output_norm.weight", {d.n_embd}, "norm");
  if (!gemma) add("output.weight", {d.n_embd, n_vocab}, "matrix");
  if (phi3) {
    add("rope_factors_short.weight", {hd / 2}, "factors");
    add("rope_factors_long.weight", {hd / 2}, "factors");
  }
  return g.build();
}

}  // namespace apr::trace::testing
