// SPDX-License-Identifier: MIT
#include "trace_isolate/kernel_case.hpp"

#include <algorithm>
#include <optional>

#include "common/error.hpp"
#include "model/model.hpp"
#include "quant/quant.hpp"
#include "runtime/stage_kernels.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/stages.hpp"
#include "trace_format/stitch.hpp"

namespace apr::isolate {

namespace {

constexpr uint64_t kF32 = sizeof(float);

template <typename T>
const T* find_role(const std::vector<T>& items, const std::string& role) {
  for (const T& t : items)
    if (t.role == role) return &t;
  return nullptr;
}

std::string where(uint32_t step, uint32_t layer, apr_stage stage) {
  return std::string(trace::stage_name(stage)) +
         (layer == APR_LAYER_NONE ? std::string() : " of layer " + std::to_string(layer)) +
         " at step " + std::to_string(step);
}

// Side A's recorded tensors, by (step, layer, stage).
class TraceInputs {
 public:
  TraceInputs(const trace::TraceDirectory& a, std::string purpose)
      : a_(a), purpose_(std::move(purpose)) {
    if (!a.manifest) throw Error(a.dir.string() + ": side A's trace has no manifest");
    steps_ = a.manifest->steps;
    if (steps_.empty()) steps_.push_back({0, 0, a.manifest->token_ids, std::nullopt});
  }

  // The positions the traced run held: its session's context, which chooses phi3's RoPE factors.
  uint32_t positions() const {
    const trace::ManifestStep& last = steps_.back();
    return last.pos0 + static_cast<uint32_t>(last.tokens.size());
  }

  const trace::ManifestStep& step(uint32_t s) const {
    if (s >= steps_.size())
      throw Error(a_.dir.string() + ": side A's trace has no step " + std::to_string(s));
    return steps_[s];
  }

  CaseTensor read(uint32_t step, uint32_t layer, apr_stage stage, std::string role) const {
    for (const trace::ManifestFile& f : a_.manifest->files) {
      if (f.step != step || f.layer != layer || f.stage != stage) continue;
      return {std::move(role), f.shape, trace::read_aprt(a_.dir / f.path).values};
    }
    throw Error(a_.dir.string() + ": side A's trace has no " + where(step, layer, stage) +
                ", which " + purpose_ + " needs");
  }

 private:
  const trace::TraceDirectory& a_;
  std::string purpose_;
  std::vector<trace::ManifestStep> steps_;
};

CaseMatrix matrix_of(const gguf::TensorInfo& t, std::string role) {
  return {std::move(role), t.name, t.type, t.ne[0], t.ne[1], {t.data, t.data + t.nbytes}};
}

// Rows [first, first + count) of a matrix under its own name: a half of phi3's fused ffn_up, as
// the session hands it to weight_create.
CaseMatrix matrix_rows(const gguf::TensorInfo& t, uint64_t first, uint64_t count,
                       std::string role) {
  const uint64_t row_bytes = t.nbytes / t.ne[1];
  const uint8_t* begin = t.data + first * row_bytes;
  return {std::move(role), t.name, t.type, t.ne[0], count, {begin, begin + count * row_bytes}};
}

CaseTensor vector_of(const gguf::TensorInfo& t, std::string role) {
  CaseTensor v{std::move(role), {t.n_elements}, std::vector<float>(t.n_elements)};
  quant::dequantize_row(t.type, t.data, v.values.data(), t.n_elements);
  return v;
}

// The rows of token_embd the step's tokens use, and the tokens renumbered into them: a case of
// the embedding stays small whatever the vocabulary.
void embedding_subset(const gguf::TensorInfo& table, const std::vector<int32_t>& tokens,
                      KernelCase& c) {
  std::vector<int32_t> ids = tokens;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  const uint64_t row_bytes = table.nbytes / table.ne[1];
  CaseMatrix m{"token_embd", table.name, table.type, table.ne[0], ids.size(), {}};
  for (int32_t id : ids)
    m.bytes.insert(m.bytes.end(), table.data + uint64_t(id) * row_bytes,
                   table.data + (uint64_t(id) + 1) * row_bytes);
  for (int32_t t : tokens)
    c.tokens.push_back(
        static_cast<int32_t>(std::lower_bound(ids.begin(), ids.end(), t) - ids.begin()));
  c.config.n_vocab = static_cast<uint32_t>(ids.size());
  c.matrices.push_back(std::move(m));
}

// Rows `first`.. of every step 0..last of one layer's `stage`, stacked: the cache contents.
CaseTensor stacked(const TraceInputs& in, uint32_t last, uint32_t layer, apr_stage stage,
                   uint64_t col0, uint64_t cols, std::string role) {
  CaseTensor out{std::move(role), {0, cols}, {}};
  for (uint32_t s = 0; s <= last; ++s) {
    const CaseTensor t = in.read(s, layer, stage, "");
    const uint64_t width = t.shape.back(), rows = t.values.size() / width;
    for (uint64_t r = 0; r < rows; ++r)
      out.values.insert(out.values.end(), t.values.begin() + r * width + col0,
                        t.values.begin() + r * width + col0 + cols);
    out.shape[0] += rows;
  }
  return out;
}

}  // namespace

const CaseTensor* KernelCase::input(const std::string& role) const {
  return find_role(inputs, role);
}
const CaseTensor* KernelCase::vector(const std::string& role) const {
  return find_role(vectors, role);
}
const CaseMatrix* KernelCase::matrix(const std::string& role) const {
  return find_role(matrices, role);
}

const char* kernel_of(apr_stage stage) {
  switch (stage) {
    case APR_STAGE_EMBEDDING:
      return "embed";
    case APR_STAGE_ATTN_NORM:
    case APR_STAGE_FFN_NORM:
    case APR_STAGE_FINAL_NORM:
    case APR_STAGE_Q_NORM:
    case APR_STAGE_K_NORM:
    case APR_STAGE_ATTN_POST_NORM:
    case APR_STAGE_FFN_POST_NORM:
      return "rms_norm";
    case APR_STAGE_QKV_BIAS:
    case APR_STAGE_POST_ATTN_RESIDUAL:
    case APR_STAGE_POST_FFN_RESIDUAL:
      return "add";
    case APR_STAGE_Q_POST_ROPE:
    case APR_STAGE_K_POST_ROPE:
      return "rope";
    case APR_STAGE_ATTN_SCORES:
    case APR_STAGE_ATTN_SOFTMAX:
    case APR_STAGE_ATTENTION:
      return "attention";
    case APR_STAGE_FFN_SILU:
    case APR_STAGE_FFN_SWIGLU:
    case APR_STAGE_FFN_GELU:
    case APR_STAGE_FFN_GEGLU:
      return "swiglu";
    default:
      return "matmul";
  }
}

std::vector<OperationNeed> case_operation_needs(const KernelCase& c) {
  const ModelConfig& m = c.config;
  std::vector<OperationNeed> needs;
  switch (c.stage) {
    case APR_STAGE_Q_NORM:
    case APR_STAGE_K_NORM:
      needs.push_back({APR_FEATURE_NORM_GROUPS, "per-head RMSNorm of Q and K"});
      break;
    case APR_STAGE_ATTN_SCORES:
    case APR_STAGE_ATTN_SOFTMAX:
    case APR_STAGE_ATTENTION:
      if (m.layer_window(c.layer) > 0)
        needs.push_back({APR_FEATURE_ATTN_WINDOW, "sliding-window attention"});
      if (m.attn_softcap > 0)
        needs.push_back({APR_FEATURE_ATTN_SOFTCAP, "soft-capped attention scores"});
      break;
    case APR_STAGE_FFN_SILU:
    case APR_STAGE_FFN_SWIGLU:
    case APR_STAGE_FFN_GELU:
    case APR_STAGE_FFN_GEGLU:
      if (m.ffn_activation == APR_ACT_GELU_TANH)
        needs.push_back({APR_FEATURE_GELU, "the GELU-gated feed-forward"});
      break;
    case APR_STAGE_EMBEDDING:
      if (m.embd_scale > 0)
        needs.push_back({OperationNeed::kUnaryKernel, "the unary kernel (embedding scale)"});
      break;
    case APR_STAGE_LM_HEAD:
      if (m.final_softcap > 0)
        needs.push_back({OperationNeed::kUnaryKernel, "the unary kernel (logit soft-cap)"});
      break;
    default:
      break;
  }
  return needs;
}

KernelCase case_from_trace(const Model& model, const trace::TraceDirectory& a, uint32_t step,
                           uint32_t layer, apr_stage stage, uint32_t ubatch) {
  const ModelConfig& cfg = model.config();
  if (!cfg.has_stage(stage))
    throw Error("no kernel case for " + where(step, layer, stage) + ": " + cfg.arch_name +
                " models have no such stage");
  const TraceInputs in(a, "isolating " + where(step, layer, stage));
  const trace::ManifestStep& st = in.step(step);
  KernelCase c;
  c.stage = stage;
  c.layer = trace::is_whole_model_stage(stage) ? APR_LAYER_NONE : layer;
  c.step = step;
  c.pos0 = st.pos0;
  c.n_rows = static_cast<uint32_t>(st.tokens.size());
  c.ubatch = step == 0 && ubatch != 0 && ubatch < c.n_rows ? ubatch : 0;
  c.config = cfg;
  c.expected = in.read(step, c.layer, stage, "expected");
  const uint32_t l = c.layer;
  auto input = [&](uint32_t lyr, apr_stage s, const char* role) {
    c.inputs.push_back(in.read(step, lyr, s, role));
  };
  // The residual stream entering layer lyr.
  auto stream_into = [&](uint32_t lyr, const char* role) {
    if (lyr == 0)
      input(0, APR_STAGE_EMBEDDING, role);
    else
      input(lyr - 1, APR_STAGE_POST_FFN_RESIDUAL, role);
  };
  // The stages that end the [q|k|v] rows, the attention block and the FFN block before the
  // residual, and the gated product, as this model's forward pass makes them.
  const apr_stage qkv_final = cfg.has_qkv_bias ? APR_STAGE_QKV_BIAS : APR_STAGE_QKV_MATMUL;
  const apr_stage attn_final = cfg.has_post_norms ? APR_STAGE_ATTN_POST_NORM : APR_STAGE_ATTN_OUT;
  const apr_stage ffn_final = cfg.has_post_norms ? APR_STAGE_FFN_POST_NORM : APR_STAGE_FFN_OUT;
  const apr_stage gated =
      cfg.ffn_activation == APR_ACT_GELU_TANH ? APR_STAGE_FFN_GEGLU : APR_STAGE_FFN_SWIGLU;
  const LayerTensors* t = l == APR_LAYER_NONE ? nullptr : &model.layers().at(l);

  switch (stage) {
    case APR_STAGE_EMBEDDING:
      embedding_subset(model.token_embd(), st.tokens, c);
      break;
    case APR_STAGE_ATTN_NORM:
      stream_into(l, "x");
      c.vectors.push_back(vector_of(*t->attn_norm, "norm"));
      break;
    case APR_STAGE_FFN_NORM:
      input(l, APR_STAGE_POST_ATTN_RESIDUAL, "x");
      c.vectors.push_back(vector_of(*t->ffn_norm, "norm"));
      break;
    case APR_STAGE_FINAL_NORM:
      input(cfg.n_layer - 1, APR_STAGE_POST_FFN_RESIDUAL, "x");
      c.vectors.push_back(vector_of(model.output_norm(), "norm"));
      break;
    case APR_STAGE_QKV_MATMUL:
      input(l, APR_STAGE_ATTN_NORM, "x");
      if (t->wqkv) {
        c.matrices.push_back(matrix_of(*t->wqkv, "wqkv"));
      } else {
        c.matrices.push_back(matrix_of(*t->wq, "wq"));
        c.matrices.push_back(matrix_of(*t->wk, "wk"));
        c.matrices.push_back(matrix_of(*t->wv, "wv"));
      }
      break;
    case APR_STAGE_QKV_BIAS: {
      input(l, APR_STAGE_QKV_MATMUL, "qkv");
      CaseTensor bias{"qkv_bias", {cfg.qkv_dim()}, {}};
      for (const gguf::TensorInfo* b : {t->bq, t->bk, t->bv}) {
        const CaseTensor part = vector_of(*b, "");
        bias.values.insert(bias.values.end(), part.values.begin(), part.values.end());
      }
      c.vectors.push_back(std::move(bias));
      break;
    }
    case APR_STAGE_Q_NORM:
    case APR_STAGE_K_NORM:
      // In place on the [q|k|v] rows; Q's norm leaves K's columns as qkv_final has them.
      input(l, qkv_final, "qkv");
      c.vectors.push_back(vector_of(stage == APR_STAGE_Q_NORM ? *t->q_norm : *t->k_norm, "norm"));
      break;
    case APR_STAGE_Q_POST_ROPE:
    case APR_STAGE_K_POST_ROPE:
      // With QK-norm, RoPE rotates the normalised heads: Q's from q_norm, K's from k_norm.
      if (!cfg.has_qk_norm)
        input(l, qkv_final, "qkv");
      else if (stage == APR_STAGE_Q_POST_ROPE)
        input(l, APR_STAGE_Q_NORM, "q");
      else
        input(l, APR_STAGE_K_NORM, "k");
      if (const gguf::TensorInfo* f = model.rope_factors_for(in.positions()))
        c.vectors.push_back(vector_of(*f, "rope_factors"));
      break;
    case APR_STAGE_ATTN_SCORES:
    case APR_STAGE_ATTN_SOFTMAX:
    case APR_STAGE_ATTENTION:
      input(l, APR_STAGE_Q_POST_ROPE, "q");
      c.inputs.push_back(stacked(in, step, l, APR_STAGE_K_POST_ROPE, 0, cfg.kv_dim(), "k_cache"));
      c.inputs.push_back(
          stacked(in, step, l, qkv_final, cfg.q_dim() + cfg.kv_dim(), cfg.kv_dim(), "v_cache"));
      if (c.inputs.back().shape[0] != uint64_t(c.pos0) + c.n_rows)
        throw Error("side A's trace holds " + std::to_string(c.inputs.back().shape[0]) +
                    " cache positions for layer " + std::to_string(l) + " up to step " +
                    std::to_string(step) + ", not " + std::to_string(c.pos0 + c.n_rows));
      break;
    case APR_STAGE_ATTN_OUT:
      input(l, APR_STAGE_ATTENTION, "x");
      c.matrices.push_back(matrix_of(*t->wo, "wo"));
      if (t->bo) c.vectors.push_back(vector_of(*t->bo, "output_bias"));
      break;
    case APR_STAGE_ATTN_POST_NORM:
      input(l, APR_STAGE_ATTN_OUT, "x");
      c.vectors.push_back(vector_of(*t->post_attn_norm, "norm"));
      break;
    case APR_STAGE_POST_ATTN_RESIDUAL:
      stream_into(l, "a");
      input(l, attn_final, "b");
      break;
    case APR_STAGE_FFN_GATE:
    case APR_STAGE_FFN_UP: {
      input(l, APR_STAGE_FFN_NORM, "x");
      const bool gate = stage == APR_STAGE_FFN_GATE;
      if (!t->w_gate)  // phi3: gate is the fused ffn_up's first n_ff rows, up the rest
        c.matrices.push_back(
            matrix_rows(*t->w_up, gate ? 0 : cfg.n_ff, cfg.n_ff, gate ? "w_gate" : "w_up"));
      else
        c.matrices.push_back(gate ? matrix_of(*t->w_gate, "w_gate") : matrix_of(*t->w_up, "w_up"));
      break;
    }
    case APR_STAGE_FFN_SILU:
    case APR_STAGE_FFN_SWIGLU:
    case APR_STAGE_FFN_GELU:
    case APR_STAGE_FFN_GEGLU:
      input(l, APR_STAGE_FFN_GATE, "gate");
      input(l, APR_STAGE_FFN_UP, "up");
      break;
    case APR_STAGE_FFN_OUT:
      input(l, gated, "x");
      c.matrices.push_back(matrix_of(*t->w_down, "w_down"));
      break;
    case APR_STAGE_FFN_POST_NORM:
      input(l, APR_STAGE_FFN_OUT, "x");
      c.vectors.push_back(vector_of(*t->post_ffn_norm, "norm"));
      break;
    case APR_STAGE_POST_FFN_RESIDUAL:
      input(l, APR_STAGE_POST_ATTN_RESIDUAL, "a");
      input(l, ffn_final, "b");
      break;
    case APR_STAGE_LM_HEAD:
      input(APR_LAYER_NONE, APR_STAGE_FINAL_NORM, "x");
      c.matrices.push_back(matrix_of(model.output(), "output"));
      c.config.tied_output = false;  // the case carries the head's matrix as "output"
      break;
    default:
      throw Error(std::string("no kernel case for stage ") + std::string(trace::stage_name(stage)));
  }
  return c;
}

namespace {

// The device's trace sink while a case runs: keeps the one stage it wants, micro-batches joined.
struct CaseSink {
  apr_stage stage;
  uint32_t layer;
  CaseTensor got;
  std::optional<std::string> error;
  apr_trace_sink abi{};

  CaseSink(apr_stage s, uint32_t l) : stage(s), layer(l) {
    abi.struct_size = sizeof abi;
    abi.user_data = this;
    abi.wants = [](void* self, apr_stage st, uint32_t ly) -> int32_t {
      auto* me = static_cast<CaseSink*>(self);
      return st == me->stage && ly == me->layer;
    };
    abi.emit = [](void* self, const apr_trace_tensor* t) -> apr_status {
      auto* me = static_cast<CaseSink*>(self);
      if (!t || t->dtype != APR_TYPE_F32 || t->ndim < 1 || t->ndim > 4) {
        me->error = "the plugin emitted a malformed tensor";
        return APR_ERR_ABORTED;
      }
      const std::vector<uint64_t> shape(t->shape, t->shape + t->ndim);
      uint64_t n = 1;
      for (uint64_t d : shape) n *= d;
      if (t->nbytes != n * sizeof(float) || (n && !t->data)) {
        me->error = "the plugin emitted a tensor whose size disagrees with its shape";
        return APR_ERR_ABORTED;
      }
      const std::span<const float> part(static_cast<const float*>(t->data), n);
      if (!trace::join_micro_batch(me->got.shape, me->got.values, shape, part)) {
        me->error = "the plugin's micro-batch tensors cannot be joined";
        return APR_ERR_ABORTED;
      }
      return APR_OK;
    };
  }
};

class CaseRunner {
 public:
  CaseRunner(const KernelCase& c, Device& d) : c_(c), d_(d), k_(d, c.config, w_) {
    if (c.layer != APR_LAYER_NONE) w_.layers.resize(size_t(c.layer) + 1);
    for (const CaseMatrix& m : c.matrices) *matrix_slot(m.role) = upload(m);
    if (const CaseTensor* r = c.vector("rope_factors")) w_.rope_factors = r->values;
    if (const CaseTensor* b = c.vector("qkv_bias")) layer().qkv_bias = upload(b->values);
    if (const CaseTensor* b = c.vector("output_bias")) layer().output_bias = upload(b->values);
  }

  void run() {
    const uint32_t step_rows = c_.ubatch ? c_.ubatch : c_.n_rows;
    if (c_.stage == APR_STAGE_LM_HEAD) return lm_head();
    if (c_.stage == APR_STAGE_ATTN_SCORES || c_.stage == APR_STAGE_ATTN_SOFTMAX ||
        c_.stage == APR_STAGE_ATTENTION)
      upload_caches();
    for (uint32_t r0 = 0; r0 < c_.n_rows; r0 += step_rows)
      run_rows(r0, std::min(step_rows, c_.n_rows - r0));
  }

 private:
  LayerWeights& layer() { return w_.layers.at(c_.layer); }

  Weight* matrix_slot(const std::string& role) {
    if (role == "token_embd") return &w_.token_embd;
    if (role == "output") return &w_.output;
    LayerWeights& l = layer();
    if (role == "wq") return &l.wq;
    if (role == "wk") return &l.wk;
    if (role == "wv") return &l.wv;
    if (role == "wqkv") return &l.wqkv;
    if (role == "wo") return &l.wo;
    if (role == "w_gate") return &l.w_gate;
    if (role == "w_up") return &l.w_up;
    if (role == "w_down") return &l.w_down;
    throw Error("kernel case: unknown matrix role '" + role + "'");
  }

  Weight upload(const CaseMatrix& m) {
    auto desc = abi_struct<apr_weight_desc>();
    desc.type = m.type;
    desc.n_cols = m.n_cols;
    desc.n_rows = m.n_rows;
    desc.data = m.bytes.data();
    desc.nbytes = m.bytes.size();
    desc.name = m.name.c_str();
    return d_.create_weight(desc);  // not persistent: the plugin copies
  }

  Buffer upload(std::span<const float> values) {
    Buffer b = d_.alloc(std::max<uint64_t>(values.size(), 1) * kF32);
    if (!values.empty()) d_.write(b, 0, values.data(), values.size() * kF32);
    return b;
  }

  const CaseTensor& need(const CaseTensor* t, const char* kind, const char* role) const {
    if (!t)
      throw Error(std::string("kernel case: no ") + kind + " '" + role + "' for " +
                  std::string(trace::stage_name(c_.stage)));
    return *t;
  }

  // Rows [r0, r0 + n) of the [q|k|v] rows RoPE or a QK-norm runs on: the case's `qkv` input, or
  // with QK-norm its normalised `q` (or `k`) in their columns and zeros elsewhere.
  Buffer qkv_rows(uint32_t r0, uint32_t n) {
    if (c_.input("qkv")) return rows_of("qkv", r0, n);
    const ModelConfig& m = c_.config;
    const uint64_t width = m.qkv_dim();
    std::vector<float> rows(uint64_t(n) * width, 0.0f);
    struct Part {
      const char* role;
      uint64_t col, cols;
    };
    for (const Part& p : {Part{"q", 0, m.q_dim()}, Part{"k", m.q_dim(), m.kv_dim()}}) {
      const auto& [role, col, cols] = p;
      const CaseTensor* t = c_.input(role);
      if (!t) continue;
      if (t->values.size() != uint64_t(c_.n_rows) * cols)
        throw Error(std::string("kernel case: input '") + role + "' does not hold " +
                    std::to_string(c_.n_rows) + " rows of " + std::to_string(cols));
      for (uint64_t r = 0; r < n; ++r)
        std::copy_n(&t->values[(r0 + r) * cols], cols, &rows[r * width + col]);
    }
    if (!c_.input("q") && !c_.input("k"))
      throw Error("kernel case: no input 'qkv', 'q' or 'k' for " +
                  std::string(trace::stage_name(c_.stage)));
    return upload(rows);
  }

  Buffer norm_vector() { return upload(need(c_.vector("norm"), "vector", "norm").values); }

  // Rows [r0, r0 + n) of a packed input of `width` columns.
  Buffer rows_of(const char* role, uint32_t r0, uint32_t n) {
    const CaseTensor* t = &need(c_.input(role), "input", role);
    const uint64_t width = t->shape.back();
    if (t->values.size() != uint64_t(c_.n_rows) * width)
      throw Error(std::string("kernel case: input '") + role + "' does not hold " +
                  std::to_string(c_.n_rows) + " rows");
    return upload(std::span(t->values).subspan(uint64_t(r0) * width, uint64_t(n) * width));
  }

  void upload_caches() {
    for (const char* role : {"k_cache", "v_cache"}) {
      const CaseTensor* t = c_.input(role);
      if (!t || t->values.size() != (uint64_t(c_.pos0) + c_.n_rows) * c_.config.kv_dim())
        throw Error(std::string("kernel case: input '") + role + "' does not hold " +
                    std::to_string(c_.pos0 + c_.n_rows) + " cache positions");
      (role[0] == 'k' ? k_cache_ : v_cache_) = upload(t->values);
    }
  }

  void emit(const Buffer& b, uint64_t offset, uint32_t n, uint32_t cols, uint32_t stride) {
    emit_stage(d_, c_.stage, c_.layer, b, offset, n, cols, stride);
  }

  // The step's rows [r0, r0 + n), at position pos0 + r0, through the stage's kernel.
  void run_rows(uint32_t r0, uint32_t n) {
    const ModelConfig& m = c_.config;
    const uint32_t l = c_.layer, pos = c_.pos0 + r0, qkv = m.qkv_dim();
    const uint64_t rows = n;
    switch (c_.stage) {
      case APR_STAGE_EMBEDDING: {
        Buffer out = d_.alloc(rows * m.n_embd * kF32);
        k_.embed(c_.tokens.data() + r0, n, out);
        return emit(out, 0, n, m.n_embd, 0);
      }
      case APR_STAGE_ATTN_NORM:
      case APR_STAGE_FFN_NORM:
      case APR_STAGE_FINAL_NORM: {
        Buffer x = rows_of("x", r0, n), out = d_.alloc(rows * m.n_embd * kF32);
        k_.rms_norm(norm_vector(), x, out, n);
        return emit(out, 0, n, m.n_embd, 0);
      }
      case APR_STAGE_QKV_MATMUL: {
        Buffer x = rows_of("x", r0, n), out = d_.alloc(rows * qkv * kF32);
        k_.qkv_matmul(l, x, out, n);
        return emit(out, 0, n, qkv, 0);
      }
      case APR_STAGE_QKV_BIAS: {
        Buffer x = rows_of("qkv", r0, n);
        k_.qkv_bias(l, x, n);
        return emit(x, 0, n, qkv, 0);
      }
      case APR_STAGE_ATTN_POST_NORM:
      case APR_STAGE_FFN_POST_NORM: {
        // In place, as the forward pass normalises attn_out and ffn_out.
        Buffer x = rows_of("x", r0, n);
        k_.rms_norm(norm_vector(), x, x, n);
        return emit(x, 0, n, m.n_embd, 0);
      }
      case APR_STAGE_Q_NORM:
      case APR_STAGE_K_NORM: {
        Buffer x = qkv_rows(r0, n);
        if (c_.stage == APR_STAGE_Q_NORM) {
          layer().q_norm = norm_vector();
          k_.q_norm(l, x, n);
          return emit(x, 0, n, m.q_dim(), qkv);
        }
        layer().k_norm = norm_vector();
        k_.k_norm(l, x, n);
        return emit(x, m.q_dim(), n, m.kv_dim(), qkv);
      }
      case APR_STAGE_Q_POST_ROPE:
      case APR_STAGE_K_POST_ROPE: {
        Buffer x = qkv_rows(r0, n);
        k_.rope(l, x, n, pos);
        if (c_.stage == APR_STAGE_Q_POST_ROPE) return emit(x, 0, n, m.q_dim(), qkv);
        return emit(x, m.q_dim(), n, m.kv_dim(), qkv);
      }
      case APR_STAGE_ATTN_SCORES:
      case APR_STAGE_ATTN_SOFTMAX:
      case APR_STAGE_ATTENTION: {
        // Q into the [q|k|v] rows the kernel reads; K and V are already in the caches.
        const CaseTensor* q = &need(c_.input("q"), "input", "q");
        if (q->values.size() != uint64_t(c_.n_rows) * m.q_dim())
          throw Error("kernel case: input 'q' does not hold " + std::to_string(c_.n_rows) +
                      " rows of " + std::to_string(m.q_dim()));
        std::vector<float> rows_qkv(rows * qkv, 0.0f);
        for (uint64_t r = 0; r < rows; ++r)
          std::copy_n(&q->values[(r0 + r) * m.q_dim()], m.q_dim(), &rows_qkv[r * qkv]);
        Buffer x = upload(rows_qkv), out = d_.alloc(rows * m.q_dim() * kF32);
        k_.attention(l, x, n, pos, k_cache_, v_cache_, out);
        if (c_.stage == APR_STAGE_ATTENTION) emit(out, 0, n, m.q_dim(), 0);
        return;  // the scores and the softmax are emitted by the plugin itself
      }
      case APR_STAGE_ATTN_OUT: {
        Buffer x = rows_of("x", r0, n), out = d_.alloc(rows * m.n_embd * kF32);
        k_.attn_out(l, x, out, n);
        return emit(out, 0, n, m.n_embd, 0);
      }
      case APR_STAGE_POST_ATTN_RESIDUAL:
      case APR_STAGE_POST_FFN_RESIDUAL: {
        Buffer a = rows_of("a", r0, n), b = rows_of("b", r0, n);
        Buffer out = d_.alloc(rows * m.n_embd * kF32);
        k_.residual(a, b, out, n);
        return emit(out, 0, n, m.n_embd, 0);
      }
      case APR_STAGE_FFN_GATE:
      case APR_STAGE_FFN_UP: {
        Buffer x = rows_of("x", r0, n), out = d_.alloc(rows * m.n_ff * kF32);
        if (c_.stage == APR_STAGE_FFN_GATE)
          k_.ffn_gate(l, x, out, n);
        else
          k_.ffn_up(l, x, out, n);
        return emit(out, 0, n, m.n_ff, 0);
      }
      case APR_STAGE_FFN_SILU:
      case APR_STAGE_FFN_SWIGLU:
      case APR_STAGE_FFN_GELU:
      case APR_STAGE_FFN_GEGLU: {
        Buffer g = rows_of("gate", r0, n), u = rows_of("up", r0, n);
        Buffer out = d_.alloc(rows * m.n_ff * kF32);
        k_.swiglu(l, g, u, out, n);
        if (c_.stage == APR_STAGE_FFN_SWIGLU || c_.stage == APR_STAGE_FFN_GEGLU)
          emit(out, 0, n, m.n_ff, 0);
        return;  // ffn_silu and ffn_gelu are emitted by the plugin itself
      }
      case APR_STAGE_FFN_OUT: {
        Buffer x = rows_of("x", r0, n), out = d_.alloc(rows * m.n_embd * kF32);
        k_.ffn_down(l, x, out, n);
        return emit(out, 0, n, m.n_embd, 0);
      }
      default:
        throw Error(std::string("no kernel case for stage ") +
                    std::string(trace::stage_name(c_.stage)));
    }
  }

  // The head reads the step's last row only, as the forward pass does.
  void lm_head() {
    Buffer x = rows_of("x", c_.n_rows - 1, 1), out = d_.alloc(uint64_t(c_.config.n_vocab) * kF32);
    k_.lm_head(x, 0, 1, out);
    emit(out, 0, 1, c_.config.n_vocab, 0);
  }

  const KernelCase& c_;
  Device& d_;
  ModelWeights w_;
  StageKernels k_;
  Buffer k_cache_, v_cache_;
};

// Refuses a device that lacks an operation of ABI 1.3 the case needs, as the host refuses it for
// a model (host/backend.cpp), instead of letting a kernel ignore an argument member it does not
// know and fail the comparison.
void require_operations(const KernelCase& c, const Device& device) {
  const std::vector<OperationNeed> needs = case_operation_needs(c);
  if (needs.empty()) return;
  const apr_plugin_api& api = device.api();
  const uint32_t minor = std::min<uint32_t>(api.abi_minor, APR_ABI_MINOR);
  const std::string backend = "backend '" + device.backend() + "'";
  const std::string what = "this " + std::string(trace::stage_name(c.stage)) + " case";
  std::string all;
  for (const OperationNeed& n : needs) all += (all.empty() ? "" : ", ") + n.what;
  if (minor < 3)
    throw Error(backend + " speaks plugin ABI 1." + std::to_string(minor) + ", but " + what +
                " needs ABI 1.3 for " + all);
  uint64_t features = 0;
  if (APR_STRUCT_HAS(&api, apr_plugin_api, device_caps) && api.device_caps) {
    auto caps = abi_struct<apr_device_caps>();
    if (api.device_caps(device.index(), &caps) == APR_OK) features = caps.features;
  }
  std::string missing;
  for (const OperationNeed& n : needs) {
    const bool has =
        n.feature == OperationNeed::kUnaryKernel ? device.has_unary() : (features & n.feature) != 0;
    if (!has) missing += (missing.empty() ? "" : ", ") + n.what;
  }
  if (!missing.empty())
    throw Error(backend + " (device " + std::to_string(device.index()) + ") lacks " + missing +
                ", which " + what + " needs");
}

}  // namespace

CaseTensor run_case(const KernelCase& c, Device& device) {
  require_operations(c, device);
  CaseSink sink(c.stage, c.layer);
  device.set_trace_sink(&sink.abi);
  try {
    CaseRunner(c, device).run();
  } catch (...) {
    try {
      device.set_trace_sink(nullptr);
    } catch (...) {
      // The first failure is the one worth reporting.
    }
    if (sink.error) throw Error("kernel case: " + *sink.error);
    throw;
  }
  device.set_trace_sink(nullptr);
  if (sink.error) throw Error("kernel case: " + *sink.error);
  if (sink.got.shape.empty())
    throw Error(std::string("kernel case: the plugin's ") + kernel_of(c.stage) + " did not emit " +
                std::string(trace::stage_name(c.stage)));
  sink.got.role = "output";
  return sink.got;
}

}  // namespace apr::isolate
