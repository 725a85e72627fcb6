// SPDX-License-Identifier: MIT
// The tiny model in float64, written from plugin.h's definitions of the kernels and the stage
// order of the forward pass (names.hpp), with reference_ops.hpp's helpers. It shares with the
// host only the model's description (TinyModelSpec and its weights), never the host's or a
// plugin's code.
#include <cmath>
#include <cstring>

#include "reference_ops.hpp"
#include "tiny_model.hpp"

namespace conformance {
namespace {

using Rows = std::vector<std::vector<double>>;

// The family's parameters as the reference reads them (the constants of tiny_model.hpp).
struct RefFamily {
  bool gemma;
  double embd_scale, attn_softcap, final_softcap;
  uint32_t window(uint32_t layer) const { return gemma && layer == 0 ? kTinySlidingWindow : 0; }
  double rope_base(uint32_t layer) const { return gemma && layer == 0 ? 1000.0 : 10000.0; }
};

RefFamily family_of(const TinyModelSpec& s) {
  if (s.family == TinyFamily::kQwen2) return {false, 0, 0, 0};
  // The embedding scale is the host's f32 parameter sqrt(n_embd).
  return {true, double(std::sqrt(float(s.n_embd))), kTinyAttnSoftcap, kTinyFinalSoftcap};
}

// A dequantized matrix, n_rows x n_cols.
struct RefMatrix {
  uint64_t n_rows, n_cols;
  std::vector<double> w;
  explicit RefMatrix(const TinyMatrix& m)
      : n_rows(m.n_rows),
        n_cols(m.n_cols),
        w(kernel_tests::ref_weight(m.type, m.bytes, m.n_rows, m.n_cols)) {}
  // y = W x (+ bias).
  std::vector<double> apply(const std::vector<double>& x, const float* bias = nullptr) const {
    std::vector<double> y(n_rows);
    for (uint64_t o = 0; o < n_rows; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (uint64_t i = 0; i < n_cols; ++i) acc += w[o * n_cols + i] * x[i];
      y[o] = acc;
    }
    return y;
  }
};

// RMSNorm of `groups` equal groups of x's entries [first, first + n), in place.
void norm_in_place(std::vector<double>& x, uint64_t first, uint64_t n, uint32_t groups,
                   const std::vector<float>& weight, double eps) {
  const uint64_t width = n / groups;
  for (uint32_t g = 0; g < groups; ++g) {
    double* v = x.data() + first + g * width;
    double ss = 0;
    for (uint64_t i = 0; i < width; ++i) ss += v[i] * v[i];
    const double scale = 1.0 / std::sqrt(ss / double(width) + eps);
    for (uint64_t i = 0; i < width; ++i) v[i] = v[i] * scale * weight[i];
  }
}

std::vector<double> normed(std::vector<double> x, const std::vector<float>& weight) {
  norm_in_place(x, 0, x.size(), 1, weight, 1e-5);
  return x;
}

void add_to(std::vector<double>& x, const std::vector<double>& y) {
  for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
}

struct RefLayer {
  const TinyLayer& h;
  RefMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
  Rows k_cache, v_cache;  // one row per position
  explicit RefLayer(const TinyLayer& l)
      : h(l),
        wq(l.wq),
        wk(l.wk),
        wv(l.wv),
        wo(l.wo),
        w_gate(l.w_gate),
        w_up(l.w_up),
        w_down(l.w_down) {}
};

class RefModel {
 public:
  RefModel(const TinyModelSpec& s, const TinyHostWeights& w)
      : s_(s), f_(family_of(s)), w_(w), output_(w.output) {
    for (const TinyLayer& l : w.layers) layers_.emplace_back(l);
  }

  // One forward call of `tokens` at positions pos0..; the last row's logits.
  std::vector<double> run(const std::vector<int32_t>& tokens, uint32_t pos0) {
    Rows x;
    for (int32_t t : tokens) x.push_back(embedding(t));
    for (uint32_t l = 0; l < s_.n_layer; ++l) {
      attention_block(l, x, pos0);
      ffn_block(l, x);
    }
    std::vector<double> logits = output_.apply(normed(x.back(), w_.output_norm));
    if (f_.final_softcap > 0)
      for (double& z : logits) z = kernel_tests::ref_unary(APR_UNARY_SOFTCAP, f_.final_softcap, z);
    return logits;
  }

 private:
  std::vector<double> embedding(int32_t token) const {
    std::vector<double> e(s_.n_embd);
    for (uint32_t c = 0; c < s_.n_embd; ++c) {
      float v;
      std::memcpy(&v, w_.token_embd.bytes.data() + (uint64_t(token) * s_.n_embd + c) * 4, 4);
      e[c] = f_.embd_scale > 0 ? f_.embd_scale * v : v;
    }
    return e;
  }

  // Rows x += attention(norm(x)) for layer l: QKV (+ bias), QK-norm, RoPE, the cache, the
  // (windowed, soft-capped) attention, the output projection (+ post-norm).
  void attention_block(uint32_t l, Rows& x, uint32_t pos0) {
    RefLayer& L = layers_[l];
    const uint32_t q_dim = s_.n_head * s_.head_dim, kv_dim = s_.n_head_kv * s_.head_dim;
    const float* bias = L.h.qkv_bias.empty() ? nullptr : L.h.qkv_bias.data();
    std::vector<double> q_all;
    for (size_t r = 0; r < x.size(); ++r) {
      const std::vector<double> h = normed(x[r], L.h.attn_norm);
      std::vector<double> q = L.wq.apply(h, bias);
      std::vector<double> k = L.wk.apply(h, bias ? bias + q_dim : nullptr);
      std::vector<double> v = L.wv.apply(h, bias ? bias + q_dim + kv_dim : nullptr);
      if (!L.h.q_norm.empty()) {
        norm_in_place(q, 0, q_dim, s_.n_head, L.h.q_norm, 1e-5);
        norm_in_place(k, 0, kv_dim, s_.n_head_kv, L.h.k_norm, 1e-5);
      }
      const double pos = double(pos0 + r);
      kernel_tests::ref_rope_row(q, s_.n_head, s_.head_dim, s_.head_dim, APR_ROPE_HALF, pos,
                                 f_.rope_base(l), 1.0);
      kernel_tests::ref_rope_row(k, s_.n_head_kv, s_.head_dim, s_.head_dim, APR_ROPE_HALF, pos,
                                 f_.rope_base(l), 1.0);
      q_all.insert(q_all.end(), q.begin(), q.end());
      L.k_cache.push_back(std::move(k));
      L.v_cache.push_back(std::move(v));
    }
    std::vector<double> k_all, v_all;
    for (size_t t = 0; t < L.k_cache.size(); ++t) {
      k_all.insert(k_all.end(), L.k_cache[t].begin(), L.k_cache[t].end());
      v_all.insert(v_all.end(), L.v_cache[t].begin(), L.v_cache[t].end());
    }
    const kernel_tests::RefAttention a = kernel_tests::ref_attention(
        q_all.data(), q_dim, k_all.data(), v_all.data(), kv_dim, uint32_t(x.size()), pos0,
        s_.n_head, s_.n_head_kv, s_.head_dim, 1.0 / std::sqrt(double(s_.head_dim)), f_.window(l),
        f_.attn_softcap);
    for (size_t r = 0; r < x.size(); ++r) {
      const std::vector<double> att(a.out.begin() + r * q_dim, a.out.begin() + (r + 1) * q_dim);
      std::vector<double> o = L.wo.apply(att);
      if (!L.h.post_attn_norm.empty()) o = normed(o, L.h.post_attn_norm);
      add_to(x[r], o);
    }
  }

  // Rows x += ffn(norm(x)) for layer l: act(gate) * up, the down projection (+ post-norm).
  void ffn_block(uint32_t l, Rows& x) const {
    const RefLayer& L = layers_[l];
    for (std::vector<double>& row : x) {
      const std::vector<double> h = normed(row, L.h.ffn_norm);
      const std::vector<double> gate = L.w_gate.apply(h), up = L.w_up.apply(h);
      std::vector<double> a(s_.n_ff);
      for (uint32_t i = 0; i < s_.n_ff; ++i)
        a[i] = (f_.gemma ? kernel_tests::ref_gelu_tanh(gate[i]) : kernel_tests::ref_silu(gate[i])) *
               up[i];
      std::vector<double> o = L.w_down.apply(a);
      if (!L.h.post_ffn_norm.empty()) o = normed(o, L.h.post_ffn_norm);
      add_to(row, o);
    }
  }

  const TinyModelSpec& s_;
  RefFamily f_;
  const TinyHostWeights& w_;
  std::vector<RefLayer> layers_;
  RefMatrix output_;
};

}  // namespace

std::vector<std::vector<double>> reference_tiny_model(
    const TinyModelSpec& spec, const std::vector<std::vector<int32_t>>& batches) {
  const TinyHostWeights weights = tiny_host_weights(spec);
  RefModel model(spec, weights);
  std::vector<std::vector<double>> logits;
  uint32_t pos0 = 0;
  for (const std::vector<int32_t>& tokens : batches) {
    logits.push_back(model.run(tokens, pos0));
    pos0 += uint32_t(tokens.size());
  }
  return logits;
}

}  // namespace conformance
