// SPDX-License-Identifier: MIT
// Kernel cases of the newer families (qwen3, gemma2, gemma3, phi3) built from a synthetic side-A
// trace of a tiny model of each family (family_models.hpp): every stage's inputs are the stages
// before it in that family's forward order, phi3's fused matrices arrive as the session hands
// them to the plugin, and the constants of the case's layer (window, RoPE base, soft-caps, scales,
// activation) travel through case.json. No plugin runs here (test_isolate_run.cpp runs them).
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "common/error.hpp"
#include "family_models.hpp"
#include "model/model.hpp"
#include "test_support.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/manifest.hpp"
#include "trace_format/stages.hpp"
#include "trace_format/trace_dir.hpp"
#include "trace_isolate/case_files.hpp"

using namespace apr;
using namespace apr::isolate;
using apr::trace::testing::family_model_gguf;
using apr::trace::testing::random_values;
using apr::trace::testing::ScratchDir;

namespace {

constexpr uint32_t kPrompt = 3;

struct FamilyModel {
  ScratchDir dir;
  std::unique_ptr<Model> model;
  explicit FamilyModel(const std::string& arch) : dir("family-" + arch) {
    const auto path = dir.path() / (arch + ".gguf");
    const std::vector<uint8_t> bytes = family_model_gguf(arch);
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    model = Model::load(path);
  }
  const ModelConfig& config() const { return model->config(); }
};

using Key = std::tuple<uint32_t, uint32_t, apr_stage>;  // step, layer, stage

// Side A's trace of every stage the model has, for a prompt of kPrompt tokens and `steps` decode
// steps, with random values (kept in `values` to compare the cases' inputs with).
struct SyntheticTrace {
  ScratchDir dir{"synthetic"};
  std::map<Key, std::vector<float>> values;
  trace::TraceDirectory listed;

  SyntheticTrace(const ModelConfig& c, uint32_t steps) {
    trace::Manifest m;
    m.architecture = c.arch_name;
    m.backend = "a";
    m.token_ids = {4, 9, 4};
    uint32_t seed = 1;
    for (uint32_t s = 0; s <= steps; ++s) {
      const uint32_t rows = s == 0 ? kPrompt : 1;
      if (steps > 0)
        m.steps.push_back({s, s == 0 ? 0 : kPrompt + s - 1,
                           s == 0 ? m.token_ids : std::vector<int32_t>{int32_t(10 + s)}, 7});
      for (apr_stage st : trace::stages_in_forward_order()) {
        if (!c.has_stage(st)) continue;
        for (uint32_t l = 0; l <= c.n_layer; ++l) {
          const uint32_t layer = l == c.n_layer ? APR_LAYER_NONE : l;
          if (trace::is_whole_model_stage(st) != (layer == APR_LAYER_NONE)) continue;
          if (!trace::stage_exists_in_layer(st, layer)) continue;
          std::vector<uint64_t> shape = trace::expected_shape(st, c, rows);
          if (st == APR_STAGE_ATTN_SCORES || st == APR_STAGE_ATTN_SOFTMAX)
            shape.back() = (s == 0 ? 0 : kPrompt + s - 1) + rows;
          uint64_t n = 1;
          for (uint64_t d : shape) n *= d;
          const std::string path = trace::stage_file_path(st, layer, s);
          std::filesystem::create_directories((dir.path() / path).parent_path());
          values[{s, layer, st}] = random_values(n, seed++);
          trace::write_aprt(dir.path() / path, layer, values[{s, layer, st}]);
          m.files.push_back({path, s, st, layer, shape, "f32"});
        }
      }
    }
    trace::write_manifest(dir.path(), m);
    listed = trace::list_trace_directory(dir.path());
  }

  const std::vector<float>& at(uint32_t step, uint32_t layer, apr_stage stage) const {
    return values.at({step, layer, stage});
  }
  // Columns [col0, col0 + cols) of every row of a traced tensor `width` wide.
  std::vector<float> columns(uint32_t step, uint32_t layer, apr_stage stage, uint64_t width,
                             uint64_t col0, uint64_t cols) const {
    const std::vector<float>& v = at(step, layer, stage);
    std::vector<float> out;
    for (uint64_t r = 0; r < v.size() / width; ++r)
      out.insert(out.end(), v.begin() + r * width + col0, v.begin() + r * width + col0 + cols);
    return out;
  }
};

std::vector<float> dequantized(const gguf::TensorInfo& t) {
  std::vector<float> v(t.n_elements);
  std::memcpy(v.data(), t.data, t.nbytes);  // the test models are F32
  return v;
}

const std::vector<float>& input(const KernelCase& c, const std::string& role) {
  INFO("input '" << role << "' of " << trace::stage_name(c.stage));
  REQUIRE(c.input(role));
  return c.input(role)->values;
}

nlohmann::ordered_json exported_config(const KernelCase& c, const ScratchDir& dir,
                                       const std::string& name) {
  write_case(c, {}, {}, dir.path() / name);
  return nlohmann::ordered_json::parse(std::ifstream(dir.path() / name / "case.json"))["config"];
}

}  // namespace

TEST_CASE("every stage's case reads the stages before it in the family's forward order",
          "[trace][case][families]") {
  for (const std::string& arch : trace::testing::family_names()) {
    DYNAMIC_SECTION(arch) {
      const FamilyModel fm(arch);
      const ModelConfig& c = fm.config();
      const SyntheticTrace a(c, 1);
      const apr_stage qkv_final = c.has_qkv_bias ? APR_STAGE_QKV_BIAS : APR_STAGE_QKV_MATMUL;
      const bool gemma = arch == "gemma2" || arch == "gemma3";
      const bool qk_norm = arch == "qwen3" || arch == "gemma3";
      CHECK(c.has_qk_norm == qk_norm);
      CHECK(c.has_post_norms == gemma);
      CHECK((c.ffn_activation == APR_ACT_GELU_TANH) == gemma);
      size_t checked = 0;
      for (uint32_t step = 0; step <= 1; ++step)
        for (const auto& [key, values] : a.values) {
          const auto [s, l, stage] = key;
          if (s != step) continue;
          INFO(arch << " step " << step << " layer " << l << " " << trace::stage_name(stage));
          const KernelCase k = case_from_trace(*fm.model, a.listed, step, l, stage, 0);
          ++checked;
          CHECK(k.expected.values == values);
          CHECK(k.n_rows == (step == 0 ? kPrompt : 1));
          const LayerTensors* t = l == APR_LAYER_NONE ? nullptr : &fm.model->layers().at(l);
          const auto stream = [&] {
            return l == 0 ? a.at(step, 0, APR_STAGE_EMBEDDING)
                          : a.at(step, l - 1, APR_STAGE_POST_FFN_RESIDUAL);
          };
          switch (stage) {
            case APR_STAGE_Q_NORM:
            case APR_STAGE_K_NORM:
              CHECK(input(k, "qkv") == a.at(step, l, qkv_final));
              REQUIRE(k.vector("norm"));
              CHECK(k.vector("norm")->values ==
                    dequantized(stage == APR_STAGE_Q_NORM ? *t->q_norm : *t->k_norm));
              CHECK(k.vector("norm")->values.size() == c.head_dim);
              CHECK(std::string(kernel_of(stage)) == "rms_norm");
              break;
            case APR_STAGE_Q_POST_ROPE:
              if (qk_norm) {
                CHECK(input(k, "q") == a.at(step, l, APR_STAGE_Q_NORM));
                CHECK_FALSE(k.input("qkv"));
              } else {
                CHECK(input(k, "qkv") == a.at(step, l, qkv_final));
              }
              break;
            case APR_STAGE_K_POST_ROPE:
              if (qk_norm) {
                CHECK(input(k, "k") == a.at(step, l, APR_STAGE_K_NORM));
                CHECK_FALSE(k.input("qkv"));
              } else {
                CHECK(input(k, "qkv") == a.at(step, l, qkv_final));
              }
              break;
            case APR_STAGE_ATTENTION: {
              CHECK(input(k, "q") == a.at(step, l, APR_STAGE_Q_POST_ROPE));
              std::vector<float> k_cache, v_cache;
              for (uint32_t s0 = 0; s0 <= step; ++s0) {
                const auto& kr = a.at(s0, l, APR_STAGE_K_POST_ROPE);
                k_cache.insert(k_cache.end(), kr.begin(), kr.end());
                const auto vr =
                    a.columns(s0, l, qkv_final, c.qkv_dim(), c.q_dim() + c.kv_dim(), c.kv_dim());
                v_cache.insert(v_cache.end(), vr.begin(), vr.end());
              }
              CHECK(input(k, "k_cache") == k_cache);
              CHECK(input(k, "v_cache") == v_cache);
              break;
            }
            case APR_STAGE_ATTN_POST_NORM:
              CHECK(input(k, "x") == a.at(step, l, APR_STAGE_ATTN_OUT));
              REQUIRE(k.vector("norm"));
              CHECK(k.vector("norm")->values == dequantized(*t->post_attn_norm));
              break;
            case APR_STAGE_POST_ATTN_RESIDUAL:
              CHECK(input(k, "a") == stream());
              CHECK(input(k, "b") ==
                    a.at(step, l, gemma ? APR_STAGE_ATTN_POST_NORM : APR_STAGE_ATTN_OUT));
              break;
            case APR_STAGE_FFN_SILU:
            case APR_STAGE_FFN_SWIGLU:
            case APR_STAGE_FFN_GELU:
            case APR_STAGE_FFN_GEGLU:
              CHECK(input(k, "gate") == a.at(step, l, APR_STAGE_FFN_GATE));
              CHECK(input(k, "up") == a.at(step, l, APR_STAGE_FFN_UP));
              CHECK(std::string(kernel_of(stage)) == "swiglu");
              break;
            case APR_STAGE_FFN_OUT:
              CHECK(input(k, "x") ==
                    a.at(step, l, gemma ? APR_STAGE_FFN_GEGLU : APR_STAGE_FFN_SWIGLU));
              break;
            case APR_STAGE_FFN_POST_NORM:
              CHECK(input(k, "x") == a.at(step, l, APR_STAGE_FFN_OUT));
              REQUIRE(k.vector("norm"));
              CHECK(k.vector("norm")->values == dequantized(*t->post_ffn_norm));
              break;
            case APR_STAGE_POST_FFN_RESIDUAL:
              CHECK(input(k, "a") == a.at(step, l, APR_STAGE_POST_ATTN_RESIDUAL));
              CHECK(input(k, "b") ==
                    a.at(step, l, gemma ? APR_STAGE_FFN_POST_NORM : APR_STAGE_FFN_OUT));
              break;
            case APR_STAGE_ATTN_NORM:
              CHECK(input(k, "x") == stream());
              break;
            case APR_STAGE_LM_HEAD:
              CHECK(input(k, "x") == a.at(step, APR_LAYER_NONE, APR_STAGE_FINAL_NORM));
              REQUIRE(k.matrix("output"));
              CHECK(k.matrix("output")->name == (gemma ? "token_embd.weight" : "output.weight"));
              break;
            default:
              break;
          }
        }
      // Every stage of both layers and the whole-model ones, at both steps (embedding once).
      CHECK(checked == a.values.size());
    }
  }
}

TEST_CASE("a family without a stage has no case of it", "[trace][case][families]") {
  const FamilyModel llama("llama");
  const SyntheticTrace a(llama.config(), 0);
  CHECK_THROWS_WITH(case_from_trace(*llama.model, a.listed, 0, 0, APR_STAGE_Q_NORM, 0),
                    Catch::Contains("llama models have no such stage"));
  CHECK_THROWS_WITH(case_from_trace(*llama.model, a.listed, 0, 1, APR_STAGE_FFN_GEGLU, 0),
                    Catch::Contains("no kernel case for ffn_geglu of layer 1"));
  const FamilyModel gemma("gemma2");
  const SyntheticTrace g(gemma.config(), 0);
  CHECK_THROWS_WITH(case_from_trace(*gemma.model, g.listed, 0, 0, APR_STAGE_FFN_SWIGLU, 0),
                    Catch::Contains("gemma2 models have no such stage"));
  CHECK_THROWS_WITH(case_from_trace(*gemma.model, g.listed, 0, 0, APR_STAGE_K_NORM, 0),
                    Catch::Contains("no such stage"));
}

TEST_CASE("phi3's fused matrices reach the case as the session uploads them",
          "[trace][case][families]") {
  const FamilyModel fm("phi3");
  const ModelConfig& c = fm.config();
  REQUIRE(c.fused_qkv);
  REQUIRE(c.fused_gate_up);
  const SyntheticTrace a(c, 0);
  const LayerTensors& t = fm.model->layers().at(1);

  const KernelCase qkv = case_from_trace(*fm.model, a.listed, 0, 1, APR_STAGE_QKV_MATMUL, 0);
  REQUIRE(qkv.matrices.size() == 1);
  const CaseMatrix& w = qkv.matrices[0];
  CHECK(w.role == "wqkv");
  CHECK(w.name == "blk.1.attn_qkv.weight");
  CHECK((w.n_cols == c.n_embd && w.n_rows == c.qkv_dim()));
  CHECK(w.bytes == std::vector<uint8_t>(t.wqkv->data, t.wqkv->data + t.wqkv->nbytes));
  CHECK(input(qkv, "x") == a.at(0, 1, APR_STAGE_ATTN_NORM));

  // Gate is the fused ffn_up's first n_ff rows, up the next n_ff, both under its name.
  const uint64_t half = t.w_up->nbytes / 2;
  for (const auto& [stage, role, first] : {std::tuple{APR_STAGE_FFN_GATE, "w_gate", uint64_t{0}},
                                           std::tuple{APR_STAGE_FFN_UP, "w_up", half}}) {
    INFO(role);
    const KernelCase k = case_from_trace(*fm.model, a.listed, 0, 1, stage, 0);
    REQUIRE(k.matrices.size() == 1);
    CHECK(k.matrices[0].role == role);
    CHECK(k.matrices[0].name == "blk.1.ffn_up.weight");
    CHECK((k.matrices[0].n_cols == c.n_embd && k.matrices[0].n_rows == c.n_ff));
    CHECK(k.matrices[0].bytes ==
          std::vector<uint8_t>(t.w_up->data + first, t.w_up->data + first + half));
    CHECK(input(k, "x") == a.at(0, 1, APR_STAGE_FFN_NORM));
  }
  // Both survive the case directory.
  ScratchDir dir("phi3-case");
  write_case(qkv, {}, {}, dir.path() / "qkv");
  CHECK(read_case(dir.path() / "qkv").matrix("wqkv")->bytes == w.bytes);

  // The query scale carries LongRoPE's attn_factor squared (1.25^2 / sqrt(head_dim 4)).
  const KernelCase att = case_from_trace(*fm.model, a.listed, 0, 0, APR_STAGE_ATTENTION, 0);
  CHECK(att.config.query_scale() == Approx(1.25 * 1.25 / 2.0));
  const auto j = exported_config(att, dir, "att");
  REQUIRE(j.contains("attn_scale"));
  CHECK(read_case(dir.path() / "att").config.query_scale() == att.config.query_scale());
}

TEST_CASE("phi3's RoPE case takes the short or long factors by the traced context",
          "[trace][case][families]") {
  const FamilyModel fm("phi3");
  REQUIRE(fm.config().n_ctx_orig == 4);
  const std::vector<float> shorts = dequantized(*fm.model->rope_factors_short());
  const std::vector<float> longs = dequantized(*fm.model->rope_factors_long());
  REQUIRE(shorts != longs);
  // 3 prompt tokens: 3 positions, within the original context of 4.
  const SyntheticTrace within(fm.config(), 0);
  const KernelCase s = case_from_trace(*fm.model, within.listed, 0, 0, APR_STAGE_Q_POST_ROPE, 0);
  REQUIRE(s.vector("rope_factors"));
  CHECK(s.vector("rope_factors")->values == shorts);
  // 3 + 2 decode steps: 5 positions, beyond it; every step of that trace used the long ones.
  const SyntheticTrace beyond(fm.config(), 2);
  for (uint32_t step = 0; step <= 2; ++step) {
    const KernelCase k =
        case_from_trace(*fm.model, beyond.listed, step, 1, APR_STAGE_K_POST_ROPE, 0);
    REQUIRE(k.vector("rope_factors"));
    CHECK(k.vector("rope_factors")->values == longs);
  }
}

TEST_CASE("the constants of the case's layer travel through case.json", "[trace][case][families]") {
  ScratchDir dir("family-config");
  SECTION("gemma3: a sliding layer 0 with its own RoPE base, a global layer 1") {
    const FamilyModel fm("gemma3");
    const ModelConfig& c = fm.config();
    REQUIRE(c.is_swa(0));
    REQUIRE_FALSE(c.is_swa(1));
    const SyntheticTrace a(c, 0);
    for (uint32_t l : {0u, 1u}) {
      INFO("layer " << l);
      for (apr_stage stage : {APR_STAGE_ATTENTION, APR_STAGE_Q_POST_ROPE}) {
        const KernelCase k = case_from_trace(*fm.model, a.listed, 0, l, stage, 0);
        const std::string name = std::to_string(l) + std::string(trace::stage_name(stage));
        const auto j = exported_config(k, dir, name);
        CHECK(j["rope_freq_base"].get<float>() == (l == 0 ? 10000.0f : 1e6f));
        CHECK(j.contains("window") == (l == 0));
        const KernelCase back = read_case(dir.path() / name);
        CHECK(back.config.layer_window(l) == (l == 0 ? 2u : 0u));
        CHECK(back.config.layer_rope_base(l) == c.layer_rope_base(l));
        CHECK(back.config.layer_rope_scale(l) == c.layer_rope_scale(l));
        CHECK(back.config.query_scale() == c.query_scale());
        CHECK_FALSE(j.contains("attn_softcap"));
      }
    }
    const KernelCase emb = case_from_trace(*fm.model, a.listed, 0, 0, APR_STAGE_EMBEDDING, 0);
    CHECK(exported_config(emb, dir, "emb")["embd_scale"].get<float>() == 4.0f);  // sqrt(16)
    CHECK(read_case(dir.path() / "emb").config.embd_scale == 4.0f);
    const KernelCase gelu = case_from_trace(*fm.model, a.listed, 0, 1, APR_STAGE_FFN_GELU, 0);
    CHECK(exported_config(gelu, dir, "gelu")["ffn_activation"] == APR_ACT_GELU_TANH);
    CHECK(read_case(dir.path() / "gelu").config.ffn_activation == APR_ACT_GELU_TANH);
  }
  SECTION("gemma2: soft-caps, and the window on layer 0 only") {
    const FamilyModel fm("gemma2");
    const SyntheticTrace a(fm.config(), 0);
    const KernelCase att = case_from_trace(*fm.model, a.listed, 0, 0, APR_STAGE_ATTN_SCORES, 0);
    auto j = exported_config(att, dir, "scores");
    CHECK(j["attn_softcap"].get<float>() == 50.0f);
    CHECK(j["window"] == 2);
    const KernelCase back = read_case(dir.path() / "scores");
    CHECK(back.config.attn_softcap == 50.0f);
    CHECK(back.config.layer_window(0) == 2);
    const KernelCase head = case_from_trace(*fm.model, a.listed, 0, 0, APR_STAGE_LM_HEAD, 0);
    j = exported_config(head, dir, "head");
    CHECK(j["final_softcap"].get<float>() == 30.0f);
    CHECK_FALSE(j.contains("window"));
    CHECK(read_case(dir.path() / "head").config.final_softcap == 30.0f);
    const KernelCase global = case_from_trace(*fm.model, a.listed, 0, 1, APR_STAGE_ATTENTION, 0);
    CHECK_FALSE(exported_config(global, dir, "global").contains("window"));
  }
  SECTION("llama and qwen2: case.json's config is what it always was") {
    for (const char* arch : {"llama", "qwen2"}) {
      const FamilyModel fm(arch);
      const SyntheticTrace a(fm.config(), 0);
      for (apr_stage stage : {APR_STAGE_EMBEDDING, APR_STAGE_ATTENTION, APR_STAGE_LM_HEAD}) {
        const KernelCase k = case_from_trace(*fm.model, a.listed, 0, 0, stage, 0);
        const std::string name = std::string(arch) + std::string(trace::stage_name(stage));
        std::vector<std::string> keys;
        const nlohmann::ordered_json config = exported_config(k, dir, name);
        for (const auto& [key, v] : config.items()) keys.push_back(key);
        CHECK(keys == std::vector<std::string>{"n_embd", "n_head", "n_head_kv", "head_dim", "n_rot",
                                               "n_ff", "n_vocab", "rms_eps", "rope_mode",
                                               "rope_freq_base", "rope_freq_scale"});
      }
    }
  }
}

TEST_CASE("a case names the operations of ABI 1.3 its kernel needs", "[trace][case][families]") {
  auto needs = [](const std::string& arch, uint32_t layer, apr_stage stage) {
    const FamilyModel fm(arch);
    const SyntheticTrace a(fm.config(), 0);
    std::string out;
    for (const OperationNeed& n :
         case_operation_needs(case_from_trace(*fm.model, a.listed, 0, layer, stage, 0)))
      out += (out.empty() ? "" : "; ") + n.what;
    return out;
  };
  CHECK(needs("llama", 0, APR_STAGE_ATTENTION).empty());
  CHECK(needs("qwen2", 0, APR_STAGE_EMBEDDING).empty());
  CHECK(needs("qwen3", 0, APR_STAGE_Q_NORM) == "per-head RMSNorm of Q and K");
  CHECK(needs("qwen3", 0, APR_STAGE_K_POST_ROPE).empty());
  CHECK(needs("gemma2", 0, APR_STAGE_ATTN_SOFTMAX) ==
        "sliding-window attention; soft-capped attention scores");
  CHECK(needs("gemma2", 1, APR_STAGE_ATTENTION) == "soft-capped attention scores");
  CHECK(needs("gemma3", 1, APR_STAGE_ATTENTION).empty());
  CHECK(needs("gemma3", 0, APR_STAGE_FFN_GEGLU) == "the GELU-gated feed-forward");
  CHECK(needs("gemma3", 0, APR_STAGE_EMBEDDING) == "the unary kernel (embedding scale)");
  CHECK(needs("gemma2", 0, APR_STAGE_LM_HEAD) == "the unary kernel (logit soft-cap)");
  CHECK(needs("gemma3", 0, APR_STAGE_LM_HEAD).empty());
  CHECK(needs("phi3", 0, APR_STAGE_ATTENTION).empty());
}
