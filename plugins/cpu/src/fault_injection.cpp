// SPDX-License-Identifier: MIT
// The grammar, the conditions and the position rule are described in fault_injection.hpp.
#ifdef APR_CPU_FAULT_INJECTION

#include "fault_injection.hpp"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "device.hpp"
#include "status.hpp"
#include "views.hpp"

namespace apr_cpu::fault {

namespace {

enum class Target { kStage, kKCache, kVCache };
enum class Cmp { kEq, kGt, kGe, kLt, kLe };

struct Bound {
  Cmp cmp;
  uint64_t value;
};

struct FaultSpec {
  bool active = false;
  Target target = Target::kStage;
  apr_stage stage = 0;
  uint32_t layer = 0;
  float magnitude = 1.0f;
  bool scale = false;            // multiply by magnitude instead of adding +-magnitude
  bool kernel = false;           // inside the producing kernel instead of at trace_emit
  bool split = false;            // only multi-row batches with pos0 > 0
  std::vector<Bound> rows;       // on the batch's row count
  std::vector<Bound> positions;  // on each row's position
};

FaultSpec g_fault;

// The stages a kernel can perturb with `kernel` (those it produces and can name).
constexpr apr_stage kKernelStages[] = {
    APR_STAGE_EMBEDDING, APR_STAGE_QKV_MATMUL, APR_STAGE_ATTN_SCORES, APR_STAGE_ATTN_SOFTMAX,
    APR_STAGE_ATTENTION, APR_STAGE_ATTN_OUT,   APR_STAGE_FFN_GATE,    APR_STAGE_FFN_UP,
    APR_STAGE_FFN_SILU,  APR_STAGE_FFN_SWIGLU, APR_STAGE_FFN_OUT,     APR_STAGE_LM_HEAD,
    APR_STAGE_FFN_GELU,  APR_STAGE_FFN_GEGLU};

// Per device: the current batch (see the position rule) and the kv_store calls since embed.
struct Batch {
  uint64_t pos0 = 0;
  uint64_t rows = 0;
  uint64_t next = 0;  // where the next embedded batch is assumed to start
  uint32_t kv_stores = 0;
};

std::mutex g_batches_mutex;
std::unordered_map<const apr_device*, Batch> g_batches;

// Applies `update` to the device's batch under the lock and returns a copy of the result.
template <typename Update>
Batch update_batch(const apr_device& device, Update&& update) {
  std::lock_guard<std::mutex> lock(g_batches_mutex);
  Batch& b = g_batches[&device];
  update(b);
  return b;
}

Batch learn_position(const apr_device& device, uint64_t pos0, uint64_t n_rows) {
  return update_batch(device, [&](Batch& b) {
    b.pos0 = pos0;
    b.rows = n_rows;
    b.next = pos0 + n_rows;
  });
}

bool is_whole_model(apr_stage stage) {
  return apr_sdk::stage_info(stage)->scope == apr_sdk::StageScope::kWholeModel;
}

bool supports_kernel(apr_stage stage) {
  for (apr_stage s : kKernelStages)
    if (s == stage) return true;
  return false;
}

bool holds(uint64_t v, const Bound& b) {
  switch (b.cmp) {
    case Cmp::kEq:
      return v == b.value;
    case Cmp::kGt:
      return v > b.value;
    case Cmp::kGe:
      return v >= b.value;
    case Cmp::kLt:
      return v < b.value;
    case Cmp::kLe:
      return v <= b.value;
  }
  return false;
}

bool stage_matches(apr_stage stage, uint32_t layer) {
  if (!g_fault.active || g_fault.target != Target::kStage || stage != g_fault.stage) return false;
  // Whole-model stages have no layer worth matching; the others must match exactly.
  return is_whole_model(stage) || layer == g_fault.layer;
}

bool batch_holds(const Rows& rows) {
  for (const Bound& b : g_fault.rows)
    if (!holds(rows.batch_rows, b)) return false;
  return !g_fault.split || (rows.batch_rows > 1 && rows.batch_pos0 > 0);
}

bool position_holds(uint64_t position) {
  for (const Bound& b : g_fault.positions)
    if (!holds(position, b)) return false;
  return true;
}

// row[c] is column first_col + c of the stage's row: the sign alternates with that column.
void apply_row(float* row, uint64_t n, uint64_t first_col = 0) {
  const float m = g_fault.magnitude;
  if (g_fault.scale) {
    for (uint64_t c = 0; c < n; ++c) row[c] *= m;
  } else {
    for (uint64_t c = 0; c < n; ++c) row[c] += ((first_col + c) % 2 == 0) ? m : -m;
  }
}

// The n_rows x n_cols view at data (rows row_stride apart), rows placed by `rows`.
void apply(const Rows& rows, float* data, uint64_t n_rows, uint64_t n_cols, uint64_t row_stride) {
  if (!batch_holds(rows)) return;
  for (uint64_t r = 0; r < n_rows; ++r)
    if (position_holds(rows.first + r)) apply_row(data + r * row_stride, n_cols);
}

// A kernel's n rows in the batch: the batch's rows from its pos0.
Rows batch_rows(const Batch& b, uint64_t n) {
  return Rows{b.pos0, n, b.pos0};
}

// lm_head's n rows: the batch's last n rows; the batch's own row count decides `rows`.
Rows head_rows(const Batch& b, uint64_t n) {
  if (b.rows < n) return Rows{b.pos0, n, b.pos0};  // no batch known that holds them
  return Rows{b.pos0, b.rows, b.pos0 + b.rows - n};
}

// The stage and layer of a matmul from its weight's GGUF name; false: none.
bool matmul_stage(const std::string& name, apr_stage& stage, uint32_t& layer) {
  if (name == "output.weight" || name == "token_embd.weight") {
    stage = APR_STAGE_LM_HEAD;
    layer = APR_LAYER_NONE;
    return true;
  }
  constexpr const char* kPrefix = "blk.";
  constexpr const char* kSuffix = ".weight";
  const size_t prefix = std::strlen(kPrefix), suffix = std::strlen(kSuffix);
  if (name.size() <= prefix + suffix || name.compare(0, prefix, kPrefix) != 0 ||
      name.compare(name.size() - suffix, suffix, kSuffix) != 0)
    return false;
  const size_t dot = name.find('.', prefix);
  if (dot == prefix || dot >= name.size() - suffix) return false;
  uint64_t n = 0;
  for (size_t i = prefix; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9' || n > APR_LAYER_NONE) return false;
    n = n * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  if (n >= APR_LAYER_NONE) return false;
  const std::string kind = name.substr(dot + 1, name.size() - suffix - dot - 1);
  static const struct {
    const char* kind;
    apr_stage stage;
  } kKinds[] = {{"attn_q", APR_STAGE_QKV_MATMUL}, {"attn_k", APR_STAGE_QKV_MATMUL},
                {"attn_v", APR_STAGE_QKV_MATMUL}, {"attn_output", APR_STAGE_ATTN_OUT},
                {"ffn_gate", APR_STAGE_FFN_GATE}, {"ffn_up", APR_STAGE_FFN_UP},
                {"ffn_down", APR_STAGE_FFN_OUT}};
  for (const auto& k : kKinds)
    if (kind == k.kind) {
      stage = k.stage;
      layer = static_cast<uint32_t>(n);
      return true;
    }
  return false;
}

// A decimal number made of digits only; false otherwise.
bool parse_count(const std::string& text, uint64_t& value) {
  if (text.empty() || text.size() > 18) return false;
  value = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return false;
    value = value * 10 + static_cast<uint64_t>(ch - '0');
  }
  return true;
}

[[noreturn]] void refuse(const std::string& spec, const std::string& why) {
  invalid("APR_CPU_FAULT '" + spec + "': " + why);
}

std::string kernel_stage_names() {
  std::string out;
  for (apr_stage s : kKernelStages)
    out += (out.empty() ? "" : ", ") + std::string(apr_sdk::stage_info(s)->name);
  return out;
}

}  // namespace

void configure_from_environment() {
  g_fault = FaultSpec{};
  const char* env = std::getenv("APR_CPU_FAULT");
  if (!env || !*env) return;
  const std::string spec(env);
  const size_t at = spec.find('@');
  const std::string head = spec.substr(0, at);
  const size_t first = head.find(':');
  if (first == std::string::npos)
    invalid("APR_CPU_FAULT '" + spec +
            "' is not <layer>:<stage>[:<magnitude>][@<condition>[,<condition>...]]");
  const size_t second = head.find(':', first + 1);
  const std::string layer_text = head.substr(0, first);
  const std::string stage_text =
      head.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
  FaultSpec f;
  f.active = true;
  if (layer_text == "none" || layer_text == "-") {
    f.layer = APR_LAYER_NONE;
  } else {
    char* end = nullptr;
    const unsigned long layer = std::strtoul(layer_text.c_str(), &end, 10);
    if (layer_text.empty() || *end != '\0' || layer >= APR_LAYER_NONE)
      refuse(spec, "layer '" + layer_text + "' is not a number");
    f.layer = static_cast<uint32_t>(layer);
  }
  if (stage_text == "k_cache" || stage_text == "v_cache") {
    f.target = stage_text == "k_cache" ? Target::kKCache : Target::kVCache;
  } else {
    const apr_sdk::StageInfo* stage = apr_sdk::stage_named(stage_text);
    if (!stage)
      refuse(spec, "unknown stage '" + stage_text + "' (a trace stage name, k_cache or v_cache)");
    f.stage = stage->stage;
  }
  const bool has_magnitude = second != std::string::npos;
  if (has_magnitude) {
    const std::string m = head.substr(second + 1);
    char* end = nullptr;
    f.magnitude = std::strtof(m.c_str(), &end);
    if (m.empty() || *end != '\0') refuse(spec, "magnitude '" + m + "' is not a number");
  }

  if (at != std::string::npos) {
    const std::string conditions = spec.substr(at + 1);
    size_t begin = 0;
    while (true) {
      const size_t comma = conditions.find(',', begin);
      const std::string c =
          conditions.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
      if (c == "scale") {
        f.scale = true;
      } else if (c == "kernel") {
        f.kernel = true;
      } else if (c == "split") {
        f.split = true;
      } else if (c.compare(0, 4, "rows") == 0 || c.compare(0, 3, "pos") == 0) {
        const bool on_rows = c.compare(0, 4, "rows") == 0;
        const std::string rest = c.substr(on_rows ? 4 : 3);
        static const struct {
          const char* text;
          Cmp cmp;
        } kOps[] = {
            {">=", Cmp::kGe}, {"<=", Cmp::kLe}, {"=", Cmp::kEq}, {">", Cmp::kGt}, {"<", Cmp::kLt}};
        bool parsed = false;
        for (const auto& op : kOps) {
          const size_t len = std::strlen(op.text);
          if (rest.compare(0, len, op.text) != 0) continue;
          uint64_t value = 0;
          if (!parse_count(rest.substr(len), value))
            refuse(spec, "condition '" + c + "': '" + rest.substr(len) + "' is not a number");
          (on_rows ? f.rows : f.positions).push_back({op.cmp, value});
          parsed = true;
          break;
        }
        if (!parsed)
          refuse(spec, "condition '" + c + "' compares with none of =, >, >=, <, <= and a number");
      } else {
        refuse(spec,
               "unknown condition '" + c +
                   "' (conditions: rows=N rows>N ..., pos>=K pos<K ..., split, scale, kernel)");
      }
      if (comma == std::string::npos) break;
      begin = comma + 1;
    }
  }

  if (f.target != Target::kStage) {
    if (f.layer == APR_LAYER_NONE) refuse(spec, stage_text + " needs a layer number");
    if (!has_magnitude)
      refuse(spec, stage_text + " multiplies the cached rows by the magnitude: give one (" +
                       layer_text + ":" + stage_text + ":<magnitude>)");
    f.scale = true;   // a cache fault is a scale fault
    f.kernel = true;  // made by kv_store
  }
  if (f.scale && !has_magnitude)
    refuse(spec, "'scale' needs a magnitude (<layer>:<stage>:<magnitude>)");
  if (f.kernel && f.target == Target::kStage && !supports_kernel(f.stage))
    refuse(spec, "'kernel' is not supported for stage '" + stage_text +
                     "' (kernel-level stages: " + kernel_stage_names() + ")");
  g_fault = f;
}

void device_opened(const apr_device& device) {
  update_batch(device, [](Batch& b) { b = Batch{}; });
}

void after_embed(const apr_device& device, const apr_embed_args& a) {
  const Batch b = update_batch(device, [&](Batch& s) {
    s.pos0 = s.next;
    s.rows = a.n_rows;
    s.next = s.pos0 + a.n_rows;
    s.kv_stores = 0;
  });
  if (!g_fault.kernel || !stage_matches(APR_STAGE_EMBEDDING, 0)) return;
  const uint64_t n_cols = a.table->n_cols;
  apply(batch_rows(b, a.n_rows), f32_at(a.out, a.out_offset), a.n_rows, n_cols, n_cols);
}

void after_matmul(const apr_device& device, const apr_matmul_args& a) {
  if (!g_fault.active || !g_fault.kernel || g_fault.target != Target::kStage) return;
  const apr_weight& w = *a.weight;
  apr_stage stage = 0;
  uint32_t layer = 0;
  if (!matmul_stage(w.name, stage, layer) || !stage_matches(stage, layer)) return;
  const Batch b = update_batch(device, [](Batch&) {});
  const Rows rows = stage == APR_STAGE_LM_HEAD ? head_rows(b, a.n_rows) : batch_rows(b, a.n_rows);
  const uint64_t y_stride = a.y_row_stride ? a.y_row_stride : w.n_rows;
  apply(rows, f32_at(a.y, a.y_offset), a.n_rows, w.n_rows, y_stride);
}

void after_rope(const apr_device& device, const apr_rope_args& a) {
  learn_position(device, a.pos0, a.n_rows);
}

void after_kv_store(const apr_device& device, const apr_kv_store_args& a) {
  uint32_t layer = 0;
  update_batch(device, [&](Batch& b) {
    b.pos0 = a.pos0;
    b.rows = a.n_rows;
    b.next = uint64_t{a.pos0} + a.n_rows;
    layer = b.kv_stores++;
  });
  if (!g_fault.active || g_fault.target == Target::kStage || layer != g_fault.layer) return;
  const apr_buffer* cache = g_fault.target == Target::kKCache ? a.k_cache : a.v_cache;
  const uint64_t first_byte = uint64_t{a.pos0} * a.kv_dim * 4;
  apply(Rows{a.pos0, a.n_rows, a.pos0}, f32_at(cache, first_byte), a.n_rows, a.kv_dim, a.kv_dim);
}

void after_attention(const apr_device& device, const apr_attention_args& a) {
  learn_position(device, a.pos0, a.n_rows);
  if (!g_fault.kernel || !stage_matches(APR_STAGE_ATTENTION, a.layer)) return;
  const uint64_t width = uint64_t{a.n_heads} * a.head_dim;
  apply(Rows{a.pos0, a.n_rows, a.pos0}, f32_at(a.out, a.out_offset), a.n_rows, width, width);
}

void after_swiglu(const apr_device& device, const apr_swiglu_args& a) {
  const bool gelu = apr_sdk::gated_activation(a) == APR_ACT_GELU_TANH;
  const apr_stage stage = gelu ? APR_STAGE_FFN_GEGLU : APR_STAGE_FFN_SWIGLU;
  if (!g_fault.kernel || !stage_matches(stage, a.layer)) return;
  apply(rows_of(device, a.n_rows), f32_at(a.out, a.out_offset), a.n_rows, a.n_cols, a.n_cols);
}

void before_trace_emit(const apr_device& device, const apr_trace_emit_args& a) {
  if (g_fault.kernel || !stage_matches(a.stage, a.layer)) return;
  const Batch b = update_batch(device, [](Batch&) {});
  const Rows rows = a.stage == APR_STAGE_LM_HEAD ? head_rows(b, a.n_rows) : batch_rows(b, a.n_rows);
  apply(rows, f32_at(a.buffer, a.offset), a.n_rows, a.n_cols,
        a.row_stride ? a.row_stride : a.n_cols);
}

Rows rows_of(const apr_device& device, uint32_t n_rows) {
  return batch_rows(update_batch(device, [](Batch&) {}), n_rows);
}

void perturb_row(apr_stage stage, uint32_t layer, const Rows& rows, uint64_t r, float* data,
                 uint64_t n, uint64_t first_col) {
  if (!stage_matches(stage, layer) || !batch_holds(rows) || !position_holds(rows.first + r)) return;
  apply_row(data, n, first_col);
}

bool perturbs_attention_rows(uint32_t layer) {
  return stage_matches(APR_STAGE_ATTN_SCORES, layer) ||
         stage_matches(APR_STAGE_ATTN_SOFTMAX, layer);
}

}  // namespace apr_cpu::fault

#endif
