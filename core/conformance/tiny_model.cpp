// SPDX-License-Identifier: MIT
#include "tiny_model.hpp"

#include <algorithm>
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
  c.has_qkv_bias = true;
  return c;
}

// Random weights of the tiny model on `device`, drawn in a fixed order from the spec's seed.
class TinyWeights {
 public:
  TinyWeights(apr::Device& device, const TinyModelSpec& s) : d_(device), rng_(s.seed) {
    const uint32_t q_dim = s.n_head * s.head_dim, kv_dim = s.n_head_kv * s.head_dim;
    w.token_embd = weight(APR_TYPE_F32, s.n_vocab, s.n_embd, "token_embd.weight");
    w.layers.resize(s.n_layer);
    for (apr::LayerWeights& l : w.layers) {
      l.attn_norm = upload(random_vector(rng_, s.n_embd, 0.5f, 1.5f));
      l.ffn_norm = upload(random_vector(rng_, s.n_embd, 0.5f, 1.5f));
      l.qkv_bias = upload(random_vector(rng_, q_dim + 2 * kv_dim, -0.2f, 0.2f));
      l.wq = weight(s.weight_type, q_dim, s.n_embd, "attn_q.weight");
      l.wk = weight(s.weight_type, kv_dim, s.n_embd, "attn_k.weight");
      l.wv = weight(s.weight_type, kv_dim, s.n_embd, "attn_v.weight");
      l.wo = weight(s.weight_type, s.n_embd, q_dim, "attn_output.weight");
      l.w_gate = weight(s.weight_type, s.n_ff, s.n_embd, "ffn_gate.weight");
      l.w_up = weight(s.weight_type, s.n_ff, s.n_embd, "ffn_up.weight");
      l.w_down = weight(s.weight_type, s.n_embd, s.n_ff, "ffn_down.weight");
    }
    w.output_norm = upload(random_vector(rng_, s.n_embd, 0.5f, 1.5f));
    w.output = weight(s.weight_type, s.n_vocab, s.n_embd, "output.weight");
  }

  apr::ModelWeights w;

 private:
  apr::Buffer upload(const std::vector<float>& v) {
    apr::Buffer b = d_.alloc(v.size() * sizeof(float));
    d_.write(b, 0, v.data(), v.size() * sizeof(float));
    return b;
  }
  apr::Weight weight(uint32_t type, uint64_t n_rows, uint64_t n_cols, const char* name) {
    const std::vector<uint8_t> bytes = apr_test::random_blocks(type, n_rows * n_cols, rng_);
    auto d = apr::abi_struct<apr_weight_desc>();
    d.type = type;
    d.n_cols = n_cols;
    d.n_rows = n_rows;
    d.data = bytes.data();
    d.nbytes = bytes.size();
    d.name = name;
    return d_.create_weight(d);  // not persistent: the plugin copies the bytes
  }

  apr::Device& d_;
  std::mt19937_64 rng_;
};

}  // namespace

TinyRun run_tiny_model(const apr_plugin_api& api, apr_device* dev, const TinyModelSpec& s,
                       const std::vector<std::vector<int32_t>>& batches, bool use_steps,
                       const apr_trace_sink* sink) {
  apr::Device device(apr::Device::Borrowed{}, api, apr::check_table(api), "tiny model", dev);
  const apr::ModelConfig config = tiny_config(s);
  const TinyWeights weights(device, s);
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
