// SPDX-License-Identifier: MIT
#include "tiny_model.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

#include "plugin_handle/plugin_library.hpp"
#include "ref_dequant.hpp"
#include "runtime/forward_pass.hpp"

namespace conformance {
namespace {

std::vector<float> random_vector(std::mt19937_64& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

TinyMatrix random_matrix(std::mt19937_64& rng, uint32_t type, uint64_t n_rows, uint64_t n_cols,
                         const char* name) {
  return {type, n_rows, n_cols, apr_test::random_blocks(type, n_rows * n_cols, rng), name};
}

apr::ModelConfig tiny_config(const TinyModelSpec& s) {
  apr::ModelConfig c;
  c.arch_name = "tiny";
  c.n_embd = s.n_embd;
  c.n_layer = s.n_layer;
  c.n_head = s.n_head;
  c.n_head_kv = s.n_head_kv;
  c.head_dim = s.head_dim;
  c.n_rot = s.head_dim;
  c.n_ff = s.n_ff;
  c.n_vocab = s.n_vocab;
  c.n_ctx_train = s.n_ctx;
  c.rms_eps = 1e-5f;
  c.rope_mode = APR_ROPE_HALF;
  if (s.family == TinyFamily::kQwen2) {
    c.has_qkv_bias = true;
    return c;
  }
  // Gemma-like, with every operation of ABI 1.3 at once (no real gemma has all of them): the
  // first layer slides over a window shorter than the batches' context, with its own RoPE base.
  c.arch = apr::Architecture::kGemma2;
  c.has_qk_norm = true;
  c.has_post_norms = true;
  c.ffn_activation = APR_ACT_GELU_TANH;
  c.embd_scale = std::sqrt(float(s.n_embd));
  c.attn_softcap = kTinyAttnSoftcap;
  c.final_softcap = kTinyFinalSoftcap;
  c.sliding_window = kTinySlidingWindow;
  c.layer_is_swa.assign(s.n_layer, false);
  c.layer_is_swa[0] = true;
  c.rope_freq_base_swa = 1000.0f;
  return c;
}

// The host-side weights as ModelWeights on `device`.
class TinyWeights {
 public:
  TinyWeights(apr::Device& device, const TinyHostWeights& h) : d_(device) {
    w.token_embd = weight(h.token_embd);
    for (const TinyLayer& hl : h.layers) {
      apr::LayerWeights& l = w.layers.emplace_back();
      l.attn_norm = upload(hl.attn_norm);
      l.ffn_norm = upload(hl.ffn_norm);
      l.qkv_bias = upload(hl.qkv_bias);
      l.q_norm = upload(hl.q_norm);
      l.k_norm = upload(hl.k_norm);
      l.post_attn_norm = upload(hl.post_attn_norm);
      l.post_ffn_norm = upload(hl.post_ffn_norm);
      l.wq = weight(hl.wq);
      l.wk = weight(hl.wk);
      l.wv = weight(hl.wv);
      l.wo = weight(hl.wo);
      l.w_gate = weight(hl.w_gate);
      l.w_up = weight(hl.w_up);
      l.w_down = weight(hl.w_down);
    }
    w.output_norm = upload(h.output_norm);
    w.output = weight(h.output);
  }

  apr::ModelWeights w;

 private:
  // An empty vector stays an empty Buffer: the family has no such weight.
  apr::Buffer upload(const std::vector<float>& v) {
    if (v.empty()) return {};
    apr::Buffer b = d_.alloc(v.size() * sizeof(float));
    d_.write(b, 0, v.data(), v.size() * sizeof(float));
    return b;
  }
  apr::Weight weight(const TinyMatrix& m) {
    auto d = apr::abi_struct<apr_weight_desc>();
    d.type = m.type;
    d.n_cols = m.n_cols;
    d.n_rows = m.n_rows;
    d.data = m.bytes.data();
    d.nbytes = m.bytes.size();
    d.name = m.name.c_str();
    return d_.create_weight(d);  // not persistent: the plugin copies the bytes
  }

  apr::Device& d_;
};

}  // namespace

TinyHostWeights tiny_host_weights(const TinyModelSpec& s) {
  std::mt19937_64 rng(s.seed);
  const uint32_t q_dim = s.n_head * s.head_dim, kv_dim = s.n_head_kv * s.head_dim;
  const uint32_t t = s.weight_type;
  const bool gemma = s.family == TinyFamily::kGemma;
  TinyHostWeights h;
  h.token_embd = random_matrix(rng, APR_TYPE_F32, s.n_vocab, s.n_embd, "token_embd.weight");
  h.layers.resize(s.n_layer);
  for (TinyLayer& l : h.layers) {
    l.attn_norm = random_vector(rng, s.n_embd, 0.5f, 1.5f);
    l.ffn_norm = random_vector(rng, s.n_embd, 0.5f, 1.5f);
    if (!gemma) l.qkv_bias = random_vector(rng, q_dim + 2 * kv_dim, -0.2f, 0.2f);
    l.wq = random_matrix(rng, t, q_dim, s.n_embd, "attn_q.weight");
    l.wk = random_matrix(rng, t, kv_dim, s.n_embd, "attn_k.weight");
    l.wv = random_matrix(rng, t, kv_dim, s.n_embd, "attn_v.weight");
    l.wo = random_matrix(rng, t, s.n_embd, q_dim, "attn_output.weight");
    l.w_gate = random_matrix(rng, t, s.n_ff, s.n_embd, "ffn_gate.weight");
    l.w_up = random_matrix(rng, t, s.n_ff, s.n_embd, "ffn_up.weight");
    l.w_down = random_matrix(rng, t, s.n_embd, s.n_ff, "ffn_down.weight");
    if (gemma) {
      // QK-norm weights above 1 make scores of a few units, which the soft-cap bends.
      l.q_norm = random_vector(rng, s.head_dim, 1.5f, 2.5f);
      l.k_norm = random_vector(rng, s.head_dim, 1.5f, 2.5f);
      l.post_attn_norm = random_vector(rng, s.n_embd, 0.5f, 1.5f);
      l.post_ffn_norm = random_vector(rng, s.n_embd, 0.5f, 1.5f);
    }
  }
  h.output_norm = random_vector(rng, s.n_embd, 0.5f, 1.5f);
  h.output = random_matrix(rng, t, s.n_vocab, s.n_embd, "output.weight");
  return h;
}

bool tiny_model_has_stage(const TinyModelSpec& spec, apr_stage stage) {
  return tiny_config(spec).has_stage(stage);
}

TinyRun run_tiny_model(const apr_plugin_api& api, apr_device* dev, const TinyModelSpec& s,
                       const std::vector<std::vector<int32_t>>& batches, bool use_steps,
                       const apr_trace_sink* sink) {
  apr::Device device(apr::Device::Borrowed{}, api, apr::check_table(api), "tiny model", dev);
  const apr::ModelConfig config = tiny_config(s);
  const TinyWeights weights(device, tiny_host_weights(s));
  apr::ForwardPassOptions options;
  options.n_ctx = s.n_ctx;
  for (const auto& b : batches) options.max_rows = std::max<uint32_t>(options.max_rows, b.size());
  options.step_markers = use_steps;
  if (use_steps && !device.has_step_markers())
    throw std::runtime_error("tiny model: the plugin has no step markers");
  apr::ForwardPass pass(device, config, weights.w, options);
  struct SinkScope {
    apr::ForwardPass& pass;
    ~SinkScope() {
      try {
        pass.set_trace_sink(nullptr);
      } catch (...) {
        // Already failing; the first error is the one reported.
      }
    }
  } sink_scope{pass};
  if (sink) pass.set_trace_sink(sink);

  TinyRun run;
  uint32_t pos0 = 0;
  for (const std::vector<int32_t>& tokens : batches) {
    const uint32_t n = uint32_t(tokens.size());
    if (pos0 + n > s.n_ctx) throw std::runtime_error("tiny model: context exceeded");
    pass.run(tokens.data(), n, pos0);
    std::vector<float> out(s.n_vocab);
    pass.read_logits(out.data(), 1);
    run.logits.push_back(std::move(out));
    pos0 += n;
  }
  return run;
}

}  // namespace conformance
