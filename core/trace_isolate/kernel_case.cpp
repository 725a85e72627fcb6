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
      return "swiglu";
    default:
      return "matmul";
  }
}

KernelCase case_from_trace(const Model& model, const trace::TraceDirectory& a, uint32_t step,
                           uint32_t layer, apr_stage stage, uint32_t ubatch) {
  const ModelConfig& cfg = model.config();
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
  const apr_stage qkv_final = cfg.has_qkv_bias ? APR_STAGE_QKV_BIAS : APR_STAGE_QKV_MATMUL;
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
      c.matrices.push_back(matrix_of(*t->wq, "wq"));
      c.matrices.push_back(matrix_of(*t->wk, "wk"));
      c.matrices.push_back(matrix_of(*t->wv, "wv"));
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
    case APR_STAGE_Q_POST_ROPE:
    case APR_STAGE_K_POST_ROPE:
      input(l, qkv_final, "qkv");
      if (model.rope_freqs()) c.vectors.push_back(vector_of(*model.rope_freqs(), "rope_factors"));
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
    case APR_STAGE_POST_ATTN_RESIDUAL:
      stream_into(l, "a");
      input(l, APR_STAGE_ATTN_OUT, "b");
      break;
    case APR_STAGE_FFN_GATE:
    case APR_STAGE_FFN_UP:
      input(l, APR_STAGE_FFN_NORM, "x");
      c.matrices.push_back(stage == APR_STAGE_FFN_GATE ? matrix_of(*t->w_gate, "w_gate")
                                                       : matrix_of(*t->w_up, "w_up"));
      break;
    case APR_STAGE_FFN_SILU:
    case APR_STAGE_FFN_SWIGLU:
      input(l, APR_STAGE_FFN_GATE, "gate");
      input(l, APR_STAGE_FFN_UP, "up");
      break;
    case APR_STAGE_FFN_OUT:
      input(l, APR_STAGE_FFN_SWIGLU, "x");
      c.matrices.push_back(matrix_of(*t->w_down, "w_down"));
      break;
    case APR_STAGE_POST_FFN_RESIDUAL:
      input(l, APR_STAGE_POST_ATTN_RESIDUAL, "a");
      input(l, APR_STAGE_FFN_OUT, "b");
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
        k_.rms_norm(upload(need(c_.vector("norm"), "vector", "norm").values), x, out, n);
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
      case APR_STAGE_Q_POST_ROPE:
      case APR_STAGE_K_POST_ROPE: {
        Buffer x = rows_of("qkv", r0, n);
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
      case APR_STAGE_FFN_SWIGLU: {
        Buffer g = rows_of("gate", r0, n), u = rows_of("up", r0, n);
        Buffer out = d_.alloc(rows * m.n_ff * kF32);
        k_.swiglu(l, g, u, out, n);
        if (c_.stage == APR_STAGE_FFN_SWIGLU) emit(out, 0, n, m.n_ff, 0);
        return;  // ffn_silu is emitted by the plugin itself
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

}  // namespace

CaseTensor run_case(const KernelCase& c, Device& device) {
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
