// SPDX-License-Identifier: MIT
#include "tiny_model.hpp"

#include <cmath>
#include <random>
#include <stdexcept>

#include "ref_dequant.hpp"

namespace conformance {
namespace {

constexpr uint64_t kF32 = 4;

class Runner {
 public:
  Runner(const apr_plugin_api& api, apr_device* dev) : api_(api), dev_(dev) {}
  ~Runner() {
    for (apr_buffer* b : buffers_) api_.buffer_free(dev_, b);
    for (apr_weight* w : weights_) api_.weight_free(dev_, w);
  }

  void ok(apr_status s, const char* call) const {
    if (s != APR_OK)
      throw std::runtime_error(std::string("tiny model: ") + call + " failed (status " +
                               std::to_string(s) + "): " + api_.error_message());
  }
  apr_buffer* alloc(uint64_t n_floats) {
    apr_buffer* b = nullptr;
    ok(api_.buffer_alloc(dev_, n_floats * kF32, &b), "buffer_alloc");
    buffers_.push_back(b);
    return b;
  }
  apr_buffer* upload(const std::vector<float>& v) {
    apr_buffer* b = alloc(v.size());
    ok(api_.buffer_write(dev_, b, 0, v.data(), v.size() * kF32), "buffer_write");
    return b;
  }
  const apr_weight* weight(uint32_t type, uint64_t n_rows, uint64_t n_cols, std::mt19937_64& rng,
                           const char* name) {
    std::vector<uint8_t> bytes = apr_test::random_blocks(type, n_rows * n_cols, rng);
    apr_weight_desc d{};
    d.struct_size = sizeof d;
    d.type = type;
    d.n_cols = n_cols;
    d.n_rows = n_rows;
    d.data = bytes.data();
    d.nbytes = bytes.size();
    d.name = name;
    apr_weight* w = nullptr;
    ok(api_.weight_create(dev_, &d, &w), "weight_create");  // not persistent: copied
    weights_.push_back(w);
    return w;
  }

  const apr_plugin_api& api_;
  apr_device* dev_;
  std::vector<apr_buffer*> buffers_;
  std::vector<apr_weight*> weights_;
};

std::vector<float> random_vector(std::mt19937_64& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

struct Layer {
  apr_buffer *attn_norm, *ffn_norm, *qkv_bias, *k_cache, *v_cache;
  const apr_weight *wq, *wk, *wv, *wo, *gate, *up, *down;
};

}  // namespace

TinyRun run_tiny_model(const apr_plugin_api& api, apr_device* dev, const TinyModelSpec& s,
                       const std::vector<std::vector<int32_t>>& batches, bool use_steps) {
  Runner R(api, dev);
  std::mt19937_64 rng(s.seed);
  const uint32_t q_dim = s.n_head * s.head_dim, kv_dim = s.n_head_kv * s.head_dim;
  const uint32_t qkv = q_dim + 2 * kv_dim;
  uint32_t max_rows = 1;
  for (const auto& b : batches) max_rows = std::max<uint32_t>(max_rows, uint32_t(b.size()));

  const apr_weight* embd = R.weight(APR_TYPE_F32, s.n_vocab, s.n_embd, rng, "token_embd.weight");
  std::vector<Layer> layers(s.n_layer);
  for (Layer& l : layers) {
    l.attn_norm = R.upload(random_vector(rng, s.n_embd, 0.5f, 1.5f));
    l.ffn_norm = R.upload(random_vector(rng, s.n_embd, 0.5f, 1.5f));
    l.qkv_bias = R.upload(random_vector(rng, qkv, -0.2f, 0.2f));
    l.k_cache = R.alloc(uint64_t(s.n_ctx) * kv_dim);
    l.v_cache = R.alloc(uint64_t(s.n_ctx) * kv_dim);
    l.wq = R.weight(s.weight_type, q_dim, s.n_embd, rng, "attn_q.weight");
    l.wk = R.weight(s.weight_type, kv_dim, s.n_embd, rng, "attn_k.weight");
    l.wv = R.weight(s.weight_type, kv_dim, s.n_embd, rng, "attn_v.weight");
    l.wo = R.weight(s.weight_type, s.n_embd, q_dim, rng, "attn_output.weight");
    l.gate = R.weight(s.weight_type, s.n_ff, s.n_embd, rng, "ffn_gate.weight");
    l.up = R.weight(s.weight_type, s.n_ff, s.n_embd, rng, "ffn_up.weight");
    l.down = R.weight(s.weight_type, s.n_embd, s.n_ff, rng, "ffn_down.weight");
  }
  apr_buffer* out_norm = R.upload(random_vector(rng, s.n_embd, 0.5f, 1.5f));
  const apr_weight* head = R.weight(s.weight_type, s.n_vocab, s.n_embd, rng, "output.weight");

  apr_buffer* x = R.alloc(uint64_t(max_rows) * s.n_embd);
  apr_buffer* h = R.alloc(uint64_t(max_rows) * s.n_embd);
  apr_buffer* tmp = R.alloc(uint64_t(max_rows) * s.n_embd);
  apr_buffer* qkv_buf = R.alloc(uint64_t(max_rows) * qkv);
  apr_buffer* att = R.alloc(uint64_t(max_rows) * q_dim);
  apr_buffer* gate = R.alloc(uint64_t(max_rows) * s.n_ff);
  apr_buffer* up = R.alloc(uint64_t(max_rows) * s.n_ff);
  apr_buffer* logits = R.alloc(s.n_vocab);
  apr_buffer* scalars = R.alloc(APR_STEP_SCALARS_BYTES(max_rows) / 4);

  TinyRun run;
  uint32_t pos0 = 0;
  for (const std::vector<int32_t>& tokens : batches) {
    const uint32_t n = uint32_t(tokens.size());
    if (pos0 + n > s.n_ctx) throw std::runtime_error("tiny model: context exceeded");
    apr_step_args step{};
    if (use_steps) {
      std::vector<uint32_t> words(APR_STEP_WORD_TOKENS + n, 0);
      words[APR_STEP_WORD_POS0] = pos0;
      words[APR_STEP_WORD_N_KV] = pos0 + n;
      words[APR_STEP_WORD_N_ROWS] = n;
      for (uint32_t i = 0; i < n; ++i) words[APR_STEP_WORD_TOKENS + i] = uint32_t(tokens[i]);
      R.ok(api.buffer_write(dev, scalars, 0, words.data(), words.size() * 4), "buffer_write");
      step.struct_size = sizeof step;
      step.shape_key = n;  // same row count: same calls but for the scalars
      step.scalars = scalars;
      step.n_rows = n;
      step.pos0 = pos0;
      R.ok(api.step_begin(dev, &step), "step_begin");
    }

    auto emit = [&](apr_stage stage, uint32_t layer, apr_buffer* b, uint64_t off_elems,
                    uint32_t rows, uint32_t cols, uint32_t stride) {
      apr_trace_emit_args a{};
      a.struct_size = sizeof a;
      a.stage = stage;
      a.layer = layer;
      a.buffer = b;
      a.offset = off_elems * kF32;
      a.n_rows = rows;
      a.n_cols = cols;
      a.row_stride = stride;
      R.ok(api.trace_emit(dev, &a), "trace_emit");
    };
    auto matmul = [&](const apr_weight* w, apr_buffer* in, apr_buffer* out, uint64_t out_col,
                      uint32_t out_stride, apr_buffer* bias) {
      apr_matmul_args m{};
      m.struct_size = sizeof m;
      m.weight = w;
      m.x = in;
      m.n_rows = n;
      m.bias = bias;
      m.y = out;
      m.y_offset = out_col * kF32;
      m.y_row_stride = out_stride;
      R.ok(api.matmul(dev, &m), "matmul");
    };
    auto residual = [&](apr_stage stage, uint32_t layer) {
      apr_add_args a{};
      a.struct_size = sizeof a;
      a.a = x;
      a.b = tmp;
      a.out = x;
      a.n = uint64_t(n) * s.n_embd;
      R.ok(api.add(dev, &a), "add");
      emit(stage, layer, x, 0, n, s.n_embd, 0);
    };

    apr_embed_args e{};
    e.struct_size = sizeof e;
    e.table = embd;
    e.token_ids = tokens.data();
    e.n_rows = n;
    e.out = x;
    R.ok(api.embed(dev, &e), "embed");
    emit(APR_STAGE_EMBEDDING, 0, x, 0, n, s.n_embd, 0);

    apr_rms_norm_args norm{};
    norm.struct_size = sizeof norm;
    norm.x = x;
    norm.out = h;
    norm.n_rows = n;
    norm.n_cols = s.n_embd;
    norm.eps = 1e-5f;
    for (uint32_t li = 0; li < s.n_layer; ++li) {
      const Layer& l = layers[li];
      norm.weight = l.attn_norm;
      R.ok(api.rms_norm(dev, &norm), "rms_norm");
      emit(APR_STAGE_ATTN_NORM, li, h, 0, n, s.n_embd, 0);
      matmul(l.wq, h, qkv_buf, 0, qkv, nullptr);
      matmul(l.wk, h, qkv_buf, q_dim, qkv, nullptr);
      matmul(l.wv, h, qkv_buf, q_dim + kv_dim, qkv, nullptr);
      emit(APR_STAGE_QKV_MATMUL, li, qkv_buf, 0, n, qkv, 0);
      apr_add_args bias{};
      bias.struct_size = sizeof bias;
      bias.a = qkv_buf;
      bias.b = l.qkv_bias;
      bias.out = qkv_buf;
      bias.n = uint64_t(n) * qkv;
      bias.b_period = qkv;
      R.ok(api.add(dev, &bias), "add");
      emit(APR_STAGE_QKV_BIAS, li, qkv_buf, 0, n, qkv, 0);

      apr_rope_args rope{};
      rope.struct_size = sizeof rope;
      rope.x = qkv_buf;
      rope.x_row_stride = qkv;
      rope.n_rows = n;
      rope.n_heads = s.n_head;
      rope.head_dim = s.head_dim;
      rope.n_rot = s.head_dim;
      rope.mode = APR_ROPE_HALF;
      rope.pos0 = pos0;
      rope.freq_base = 10000.0f;
      rope.freq_scale = 1.0f;
      R.ok(api.rope(dev, &rope), "rope");
      rope.x_offset = uint64_t(q_dim) * kF32;
      rope.n_heads = s.n_head_kv;
      R.ok(api.rope(dev, &rope), "rope");
      emit(APR_STAGE_Q_POST_ROPE, li, qkv_buf, 0, n, q_dim, qkv);
      emit(APR_STAGE_K_POST_ROPE, li, qkv_buf, q_dim, n, kv_dim, qkv);

      apr_kv_store_args st{};
      st.struct_size = sizeof st;
      st.k = qkv_buf;
      st.k_offset = uint64_t(q_dim) * kF32;
      st.v = qkv_buf;
      st.v_offset = uint64_t(q_dim + kv_dim) * kF32;
      st.src_row_stride = qkv;
      st.n_rows = n;
      st.kv_dim = kv_dim;
      st.pos0 = pos0;
      st.k_cache = l.k_cache;
      st.v_cache = l.v_cache;
      R.ok(api.kv_store(dev, &st), "kv_store");

      apr_attention_args at{};
      at.struct_size = sizeof at;
      at.q = qkv_buf;
      at.q_row_stride = qkv;
      at.n_rows = n;
      at.pos0 = pos0;
      at.n_heads = s.n_head;
      at.n_kv_heads = s.n_head_kv;
      at.head_dim = s.head_dim;
      at.scale = float(1.0 / std::sqrt(double(s.head_dim)));
      at.layer = li;
      at.k_cache = l.k_cache;
      at.v_cache = l.v_cache;
      at.out = att;
      R.ok(api.attention(dev, &at), "attention");
      emit(APR_STAGE_ATTENTION, li, att, 0, n, q_dim, 0);

      matmul(l.wo, att, tmp, 0, 0, nullptr);
      emit(APR_STAGE_ATTN_OUT, li, tmp, 0, n, s.n_embd, 0);
      residual(APR_STAGE_POST_ATTN_RESIDUAL, li);

      norm.weight = l.ffn_norm;
      R.ok(api.rms_norm(dev, &norm), "rms_norm");
      emit(APR_STAGE_FFN_NORM, li, h, 0, n, s.n_embd, 0);
      matmul(l.gate, h, gate, 0, 0, nullptr);
      emit(APR_STAGE_FFN_GATE, li, gate, 0, n, s.n_ff, 0);
      matmul(l.up, h, up, 0, 0, nullptr);
      emit(APR_STAGE_FFN_UP, li, up, 0, n, s.n_ff, 0);
      apr_swiglu_args sw{};
      sw.struct_size = sizeof sw;
      sw.gate = gate;
      sw.up = up;
      sw.out = gate;
      sw.n_rows = n;
      sw.n_cols = s.n_ff;
      sw.layer = li;
      R.ok(api.swiglu(dev, &sw), "swiglu");
      emit(APR_STAGE_FFN_SWIGLU, li, gate, 0, n, s.n_ff, 0);
      matmul(l.down, gate, tmp, 0, 0, nullptr);
      emit(APR_STAGE_FFN_OUT, li, tmp, 0, n, s.n_embd, 0);
      residual(APR_STAGE_POST_FFN_RESIDUAL, li);
    }
    norm.weight = out_norm;
    R.ok(api.rms_norm(dev, &norm), "rms_norm");
    emit(APR_STAGE_FINAL_NORM, APR_LAYER_NONE, h, 0, n, s.n_embd, 0);
    apr_matmul_args m{};
    m.struct_size = sizeof m;
    m.weight = head;
    m.x = h;
    m.x_offset = uint64_t(n - 1) * s.n_embd * kF32;
    m.n_rows = 1;
    m.y = logits;
    R.ok(api.matmul(dev, &m), "matmul");
    emit(APR_STAGE_LM_HEAD, APR_LAYER_NONE, logits, 0, 1, s.n_vocab, 0);
    if (use_steps) R.ok(api.step_end(dev, &step), "step_end");

    std::vector<float> out(s.n_vocab);
    R.ok(api.buffer_read(dev, logits, 0, out.data(), out.size() * kF32), "buffer_read");
    run.logits.push_back(std::move(out));
    pos0 += n;
  }
  return run;
}

}  // namespace conformance
