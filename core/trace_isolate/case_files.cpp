// SPDX-License-Identifier: MIT
#include "trace_isolate/case_files.hpp"

#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "quant/types.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/atomic_file.hpp"
#include "trace_format/stages.hpp"

namespace apr::isolate {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr uint64_t kMaxDim = 1u << 24;             // any model dimension or row count
constexpr uint64_t kMaxCaseJsonBytes = 16u << 20;  // token ids and a few dozen entries

json tensor_entry(const CaseTensor& t, const std::string& file) {
  return {{"role", t.role}, {"file", file}, {"shape", t.shape}};
}

void write_tensor(const fs::path& dir, const std::string& rel, const CaseTensor& t) {
  fs::create_directories((dir / rel).parent_path());
  trace::write_aprt(dir / rel, 0, t.values);
}

// The constants of `layer`'s kernel calls. RoPE's base and scale are the layer's own (a
// sliding-window layer may have its own), so a reader without per-layer tables calls RoPE as the
// layer did. The members of newer families are written only when they differ from llama's, so the
// case.json of a llama or qwen2 case is what it always was; a reader takes an absent one as off.
json config_json(const ModelConfig& c, uint32_t layer) {
  json j = {{"n_embd", c.n_embd},
            {"n_head", c.n_head},
            {"n_head_kv", c.n_head_kv},
            {"head_dim", c.head_dim},
            {"n_rot", c.n_rot},
            {"n_ff", c.n_ff},
            {"n_vocab", c.n_vocab},
            {"rms_eps", c.rms_eps},
            {"rope_mode", c.rope_mode},
            {"rope_freq_base", c.layer_rope_base(layer)},
            {"rope_freq_scale", c.layer_rope_scale(layer)}};
  if (c.query_scale() != ModelConfig::default_query_scale(c.head_dim))
    j["attn_scale"] = c.query_scale();
  if (c.layer_window(layer) > 0) j["window"] = c.layer_window(layer);
  if (c.attn_softcap > 0) j["attn_softcap"] = c.attn_softcap;
  if (c.ffn_activation != APR_ACT_SILU) j["ffn_activation"] = c.ffn_activation;
  if (c.embd_scale > 0) j["embd_scale"] = c.embd_scale;
  if (c.final_softcap > 0) j["final_softcap"] = c.final_softcap;
  return j;
}

// Field-by-field checks with messages that name the file and the field.
class Reader {
 public:
  Reader(fs::path dir, const json& j) : dir_(std::move(dir)), j_(j) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw Error((dir_ / "case.json").string() + ": " + field + ": " + what);
  }
  const json& member(const json& obj, const char* key, const std::string& field) const {
    if (!obj.is_object() || !obj.contains(key)) fail(field, "missing");
    return obj[key];
  }
  uint64_t count(const json& v, uint64_t max, const std::string& field) const {
    if (!v.is_number_unsigned()) fail(field, "is not a non-negative integer");
    const uint64_t n = v.get<uint64_t>();
    if (n > max) fail(field, std::to_string(n) + " is more than " + std::to_string(max));
    return n;
  }
  double number(const json& v, const std::string& field) const {
    if (!v.is_number()) fail(field, "is not a number");
    return v.get<double>();
  }
  std::string text(const json& v, const std::string& field) const {
    if (!v.is_string()) fail(field, "is not a string");
    return v.get<std::string>();
  }
  // A file named by case.json: a plain relative path inside the case directory.
  fs::path file(const json& v, const std::string& field) const {
    const std::string rel = text(v, field);
    const fs::path p(rel);
    if (rel.empty() || p.is_absolute() || rel.find("..") != std::string::npos)
      fail(field, "\"" + rel + "\" is not a path inside the case directory");
    return dir_ / p;
  }

  CaseTensor tensor(const json& e, const std::string& field) const {
    CaseTensor t;
    t.role = text(member(e, "role", field + ".role"), field + ".role");
    const json& shape = member(e, "shape", field + ".shape");
    if (!shape.is_array() || shape.empty() || shape.size() > 3)
      fail(field + ".shape", "is not an array of 1 to 3 dimensions");
    uint64_t n = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      t.shape.push_back(count(shape[d], kMaxDim, field + ".shape"));
      n *= t.shape.back();
    }
    const fs::path path = file(member(e, "file", field + ".file"), field + ".file");
    t.values = trace::read_aprt(path).values;
    if (t.values.size() != n)
      fail(field, path.string() + " holds " + std::to_string(t.values.size()) +
                      " values, not the " + std::to_string(n) + " of its shape");
    return t;
  }

  CaseMatrix matrix(const json& e, const std::string& field) const {
    CaseMatrix m;
    m.role = text(member(e, "role", field + ".role"), field + ".role");
    m.name = text(member(e, "name", field + ".name"), field + ".name");
    m.type =
        static_cast<uint32_t>(count(member(e, "type", field + ".type"), 1000, field + ".type"));
    m.n_cols = count(member(e, "n_cols", field + ".n_cols"), kMaxDim, field + ".n_cols");
    m.n_rows = count(member(e, "n_rows", field + ".n_rows"), kMaxDim, field + ".n_rows");
    uint64_t nbytes = 0;
    try {
      nbytes = quant::row_bytes(m.type, m.n_cols) * m.n_rows;
    } catch (const Error& err) {
      fail(field, err.what());
    }
    const fs::path path = file(member(e, "file", field + ".file"), field + ".file");
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) fail(field + ".file", path.string() + " is not a file");
    if (fs::file_size(path, ec) != nbytes)
      fail(field + ".file", path.string() + " is not " + std::to_string(nbytes) + " bytes (" +
                                std::to_string(m.n_rows) + " rows of " + quant::type_name(m.type) +
                                ")");
    std::ifstream in(path, std::ios::binary);
    m.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (m.bytes.size() != nbytes) fail(field + ".file", "cannot read " + path.string());
    return m;
  }

 private:
  fs::path dir_;
  const json& j_;
};

}  // namespace

void write_case(const KernelCase& c, const CaseTolerance& tol, const CaseSource& source,
                const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !(fs::is_directory(dir, ec) && fs::is_empty(dir, ec)))
    throw Error(dir.string() + ": exists and is not an empty directory; the case is not written");
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());

  json inputs = json::array(), vectors = json::array(), matrices = json::array();
  for (const CaseTensor& t : c.inputs) {
    write_tensor(dir, "inputs/" + t.role + ".bin", t);
    inputs.push_back(tensor_entry(t, "inputs/" + t.role + ".bin"));
  }
  for (const CaseTensor& t : c.vectors) {
    write_tensor(dir, "vectors/" + t.role + ".bin", t);
    vectors.push_back(tensor_entry(t, "vectors/" + t.role + ".bin"));
  }
  for (const CaseMatrix& m : c.matrices) {
    const std::string rel = "matrices/" + m.role + ".bin";
    fs::create_directories(dir / "matrices");
    trace::write_file_atomically(
        dir / rel, std::as_bytes(std::span<const uint8_t>(m.bytes.data(), m.bytes.size())));
    matrices.push_back({{"role", m.role},
                        {"name", m.name},
                        {"type", m.type},
                        {"type_name", quant::type_name(m.type)},
                        {"n_cols", m.n_cols},
                        {"n_rows", m.n_rows},
                        {"file", rel}});
  }
  write_tensor(dir, "expected.bin", c.expected);
  const json j = {{"format", kCaseFormat},
                  {"stage", std::string(trace::stage_name(c.stage))},
                  {"kernel", kernel_of(c.stage)},
                  {"layer", c.layer == APR_LAYER_NONE ? json(nullptr) : json(c.layer)},
                  {"step", c.step},
                  {"pos0", c.pos0},
                  {"n_rows", c.n_rows},
                  {"ubatch", c.ubatch},
                  {"config", config_json(c.config, c.layer)},
                  {"tokens", c.tokens},
                  {"tolerance", {{"min_cosine", tol.min_cosine}, {"max_nmse", tol.max_nmse}}},
                  {"source",
                   {{"model", source.model_path},
                    {"model_sha256", source.model_sha256},
                    {"backend_a", source.backend_a},
                    {"backend_b", source.backend_b}}},
                  {"inputs", inputs},
                  {"vectors", vectors},
                  {"matrices", matrices},
                  {"expected", tensor_entry(c.expected, "expected.bin")}};
  const std::string text = j.dump(2) + "\n";
  trace::write_file_atomically(dir / "case.json",
                               std::as_bytes(std::span<const char>(text.data(), text.size())));
}

KernelCase read_case(const fs::path& dir, CaseTolerance* tol) {
  const fs::path file = dir / "case.json";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir.string() + ": not a kernel case directory");
  if (!fs::is_regular_file(file, ec)) throw Error(file.string() + ": missing (not a kernel case)");
  if (fs::file_size(file, ec) > kMaxCaseJsonBytes)
    throw Error(file.string() + ": larger than a case description can be");
  json j;
  try {
    j = json::parse(std::ifstream(file));
  } catch (const json::exception& e) {
    throw Error(file.string() + ": not valid JSON: " + e.what());
  }
  const Reader r(dir, j);
  if (!j.is_object() || !j.contains("format") || j["format"] != kCaseFormat)
    r.fail("format", std::string("is not \"") + kCaseFormat + "\"");

  KernelCase c;
  const std::string stage = r.text(r.member(j, "stage", "stage"), "stage");
  const auto s = trace::stage_from_name(stage);
  if (!s) r.fail("stage", "unknown stage \"" + stage + "\"");
  c.stage = *s;
  const json& layer = r.member(j, "layer", "layer");
  c.layer =
      layer.is_null() ? APR_LAYER_NONE : static_cast<uint32_t>(r.count(layer, kMaxDim, "layer"));
  if (trace::is_whole_model_stage(c.stage) != (c.layer == APR_LAYER_NONE))
    r.fail("layer", "does not fit stage " + stage);
  c.step = static_cast<uint32_t>(r.count(r.member(j, "step", "step"), kMaxDim, "step"));
  c.pos0 = static_cast<uint32_t>(r.count(r.member(j, "pos0", "pos0"), kMaxDim, "pos0"));
  c.n_rows = static_cast<uint32_t>(r.count(r.member(j, "n_rows", "n_rows"), kMaxDim, "n_rows"));
  if (c.n_rows == 0) r.fail("n_rows", "is 0");
  c.ubatch = static_cast<uint32_t>(r.count(r.member(j, "ubatch", "ubatch"), kMaxDim, "ubatch"));
  if (c.ubatch >= c.n_rows) c.ubatch = 0;

  const json& cfg = r.member(j, "config", "config");
  auto dim = [&](const char* key) {
    const uint32_t v = static_cast<uint32_t>(r.count(
        r.member(cfg, key, std::string("config.") + key), kMaxDim, std::string("config.") + key));
    if (v == 0) r.fail(std::string("config.") + key, "is 0");
    return v;
  };
  ModelConfig& m = c.config;
  m.n_embd = dim("n_embd");
  m.n_head = dim("n_head");
  m.n_head_kv = dim("n_head_kv");
  m.head_dim = dim("head_dim");
  m.n_rot = dim("n_rot");
  m.n_ff = dim("n_ff");
  m.n_vocab = dim("n_vocab");
  m.rope_mode = static_cast<uint32_t>(
      r.count(r.member(cfg, "rope_mode", "config.rope_mode"), 1000, "config.rope_mode"));
  m.rms_eps =
      static_cast<float>(r.number(r.member(cfg, "rms_eps", "config.rms_eps"), "config.rms_eps"));
  m.rope_freq_base = static_cast<float>(
      r.number(r.member(cfg, "rope_freq_base", "config.rope_freq_base"), "config.rope_freq_base"));
  m.rope_freq_scale = static_cast<float>(r.number(
      r.member(cfg, "rope_freq_scale", "config.rope_freq_scale"), "config.rope_freq_scale"));
  if (m.n_head % m.n_head_kv != 0) r.fail("config.n_head", "is not a multiple of n_head_kv");
  m.has_qkv_bias = false;  // a case carries its bias as a vector when its kernel adds one
  m.tied_output = false;
  // Members of newer families (ABI 1.3): absent in older cases and in llama/qwen2 ones, meaning
  // off.
  auto optional_number = [&](const char* key, double fallback, bool positive) {
    const std::string field = std::string("config.") + key;
    if (!cfg.contains(key)) return fallback;
    const double v = r.number(cfg[key], field);
    if (!std::isfinite(v) || v < 0 || (positive && v == 0))
      r.fail(field, std::string("is not a finite ") + (positive ? "positive" : "non-negative") +
                        " number");
    return v;
  };
  m.attn_scale = static_cast<float>(
      optional_number("attn_scale", ModelConfig::default_query_scale(m.head_dim), true));
  m.attn_softcap = static_cast<float>(optional_number("attn_softcap", 0, false));
  m.final_softcap = static_cast<float>(optional_number("final_softcap", 0, false));
  m.embd_scale = static_cast<float>(optional_number("embd_scale", 0, false));
  if (cfg.contains("ffn_activation")) {
    m.ffn_activation = static_cast<uint32_t>(
        r.count(cfg["ffn_activation"], APR_ACT_GELU_TANH, "config.ffn_activation"));
  }
  if (cfg.contains("window")) {
    // The case's layer slides: its window, with the RoPE constants read above as its own.
    const uint32_t window = static_cast<uint32_t>(r.count(cfg["window"], kMaxDim, "config.window"));
    if (window > 0 && c.layer != APR_LAYER_NONE) {
      m.sliding_window = window;
      m.layer_is_swa.assign(size_t(c.layer) + 1, false);
      m.layer_is_swa[c.layer] = true;
      m.rope_freq_base_swa = m.rope_freq_base;
      m.rope_freq_scale_swa = m.rope_freq_scale;
    }
  }

  const json& tokens = r.member(j, "tokens", "tokens");
  if (!tokens.is_array()) r.fail("tokens", "is not an array");
  for (size_t i = 0; i < tokens.size(); ++i)
    c.tokens.push_back(
        static_cast<int32_t>(r.count(tokens[i], INT32_MAX, "tokens[" + std::to_string(i) + "]")));
  if (c.stage == APR_STAGE_EMBEDDING && c.tokens.size() != c.n_rows)
    r.fail("tokens", "does not hold n_rows ids");

  for (const char* list : {"inputs", "vectors", "matrices"}) {
    const json& items = r.member(j, list, list);
    if (!items.is_array()) r.fail(list, "is not an array");
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string field = std::string(list) + "[" + std::to_string(i) + "]";
      if (std::string(list) == "matrices")
        c.matrices.push_back(r.matrix(items[i], field));
      else
        (std::string(list) == "inputs" ? c.inputs : c.vectors).push_back(r.tensor(items[i], field));
    }
  }
  c.expected = r.tensor(r.member(j, "expected", "expected"), "expected");
  if (tol) {
    const json& t = r.member(j, "tolerance", "tolerance");
    tol->min_cosine =
        r.number(r.member(t, "min_cosine", "tolerance.min_cosine"), "tolerance.min_cosine");
    tol->max_nmse = r.number(r.member(t, "max_nmse", "tolerance.max_nmse"), "tolerance.max_nmse");
  }
  return c;
}

}  // namespace apr::isolate
