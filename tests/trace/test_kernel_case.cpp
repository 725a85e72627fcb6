// SPDX-License-Identifier: MIT
// Kernel case directories (bisect --export-case, plugin-check --case): a case round-trips, and a
// malformed one is refused with the file and field named; the constants of newer families travel
// with it and older cases read as before.
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "test_support.hpp"
#include "trace_format/stages.hpp"
#include "trace_isolate/case_files.hpp"

using namespace apr;
using namespace apr::isolate;
using apr::trace::testing::random_values;
using apr::trace::testing::ScratchDir;

namespace {

// An attn_out case: 3 rows of a 16-wide attention output through a 16x8 F32 matrix.
KernelCase attn_out_case() {
  KernelCase c;
  c.stage = APR_STAGE_ATTN_OUT;
  c.layer = 2;
  c.step = 1;
  c.pos0 = 7;
  c.n_rows = 3;
  c.config.n_embd = 8;
  c.config.n_head = 4;
  c.config.n_head_kv = 2;
  c.config.head_dim = 4;
  c.config.n_rot = 4;
  c.config.n_ff = 24;
  c.config.n_vocab = 50;
  c.config.rms_eps = 1e-5f;
  c.inputs.push_back({"x", {3, 16}, random_values(48, 1)});
  c.vectors.push_back({"output_bias", {8}, random_values(8, 2)});
  const auto w = random_values(16 * 8, 3);
  CaseMatrix m{"wo", "blk.2.attn_output.weight", 0, 16, 8, {}};
  m.bytes.resize(w.size() * 4);
  std::memcpy(m.bytes.data(), w.data(), m.bytes.size());
  c.matrices.push_back(m);
  c.expected = {"expected", {3, 8}, random_values(24, 4)};
  return c;
}

void rewrite(const std::filesystem::path& dir, void (*edit)(nlohmann::json&)) {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir / "case.json"));
  edit(j);
  std::ofstream(dir / "case.json") << j.dump();
}

}  // namespace

TEST_CASE("a kernel case round-trips through its directory", "[trace][case]") {
  ScratchDir dir("case");
  const KernelCase c = attn_out_case();
  write_case(c, {0.99, 1e-4}, {"/m.gguf", std::string(64, 'a'), "cpu 1", "vulkan 2"},
             dir.path() / "c");
  CaseTolerance tol;
  const KernelCase back = read_case(dir.path() / "c", &tol);
  CHECK(tol.min_cosine == 0.99);
  CHECK(tol.max_nmse == 1e-4);
  CHECK(back.stage == c.stage);
  CHECK((back.layer == 2 && back.step == 1 && back.pos0 == 7 && back.n_rows == 3));
  CHECK(back.config.n_embd == 8);
  CHECK(back.config.n_ff == 24);
  REQUIRE(back.input("x"));
  CHECK(back.input("x")->values == c.inputs[0].values);
  CHECK(back.input("x")->shape == std::vector<uint64_t>{3, 16});
  REQUIRE(back.vector("output_bias"));
  CHECK(back.vector("output_bias")->values == c.vectors[0].values);
  REQUIRE(back.matrix("wo"));
  CHECK(back.matrix("wo")->bytes == c.matrices[0].bytes);
  CHECK(back.matrix("wo")->name == "blk.2.attn_output.weight");
  CHECK(back.expected.values == c.expected.values);
  const auto j = nlohmann::json::parse(std::ifstream(dir.path() / "c" / "case.json"));
  CHECK(j["format"] == "apr-kernel-case-v1");
  CHECK(j["kernel"] == "matmul");
  CHECK(j["source"]["backend_b"] == "vulkan 2");
  // Never over an existing case.
  CHECK_THROWS_WITH(write_case(c, {}, {}, dir.path() / "c"), Catch::Contains("not an empty"));
}

TEST_CASE("a malformed kernel case is refused with the field named", "[trace][case]") {
  ScratchDir dir("case-bad");
  const auto fresh = [&](const char* name) {
    write_case(attn_out_case(), {}, {}, dir.path() / name);
    return dir.path() / name;
  };
  CHECK_THROWS_WITH(read_case(dir.path() / "none"), Catch::Contains("not a kernel case"));
  auto d = fresh("format");
  rewrite(d, [](nlohmann::json& j) { j["format"] = "apr-kernel-case-v9"; });
  CHECK_THROWS_WITH(read_case(d), Catch::Contains("format"));
  d = fresh("stage");
  rewrite(d, [](nlohmann::json& j) { j["stage"] = "attn_nrom"; });
  CHECK_THROWS_WITH(read_case(d), Catch::Contains("unknown stage \"attn_nrom\""));
  d = fresh("escape");
  rewrite(d, [](nlohmann::json& j) { j["inputs"][0]["file"] = "../../etc/passwd"; });
  CHECK_THROWS_WITH(read_case(d), Catch::Contains("inputs[0].file"));
  d = fresh("shape");
  rewrite(d, [](nlohmann::json& j) { j["inputs"][0]["shape"] = {3, 17}; });
  CHECK_THROWS_WITH(read_case(d), Catch::Contains("not the 51 of its shape"));
  d = fresh("matrix");
  rewrite(d, [](nlohmann::json& j) { j["matrices"][0]["n_rows"] = 9; });
  CHECK_THROWS_WITH(read_case(d), Catch::Contains("matrices[0].file"));
  d = fresh("negative");
  rewrite(d, [](nlohmann::json& j) { j["config"]["n_embd"] = -8; });
  CHECK_THROWS_WITH(read_case(d), Catch::Contains("config.n_embd"));
  d = fresh("truncated");
  std::filesystem::resize_file(d / "expected.bin", 20);
  CHECK_THROWS_AS(read_case(d), Error);
  d = fresh("json");
  std::ofstream(d / "case.json") << "{";
  CHECK_THROWS_WITH(read_case(d), Catch::Contains("not valid JSON"));
}

TEST_CASE("a newer family's case keeps its layer's constants, and an older case reads as before",
          "[trace][case]") {
  ScratchDir dir("case-family");
  // A gemma2-like attention case of sliding layer 2 (RoPE base 10000 there, 1e6 elsewhere).
  KernelCase c = attn_out_case();
  c.stage = APR_STAGE_ATTN_SOFTMAX;
  ModelConfig& m = c.config;
  m.rope_freq_base = 1e6f;
  m.rope_freq_base_swa = 10000.0f;
  m.sliding_window = 5;
  m.layer_is_swa = {false, true, true, false};
  m.attn_softcap = 50.0f;
  m.attn_scale = 0.125f;
  m.final_softcap = 30.0f;
  m.embd_scale = 2.5f;
  m.ffn_activation = APR_ACT_GELU_TANH;
  write_case(c, {}, {}, dir.path() / "new");
  const auto j = nlohmann::json::parse(std::ifstream(dir.path() / "new" / "case.json"));
  CHECK(j["kernel"] == "attention");
  CHECK(j["config"]["window"] == 5);
  CHECK(j["config"]["rope_freq_base"] == 10000.0);
  CHECK(j["config"]["attn_softcap"] == 50.0);
  CHECK(j["config"]["ffn_activation"] == APR_ACT_GELU_TANH);
  const KernelCase back = read_case(dir.path() / "new");
  const ModelConfig& b = back.config;
  CHECK(b.layer_window(2) == 5);
  CHECK(b.layer_rope_base(2) == 10000.0f);
  CHECK(b.query_scale() == 0.125f);
  CHECK(b.attn_softcap == 50.0f);
  CHECK(b.final_softcap == 30.0f);
  CHECK(b.embd_scale == 2.5f);
  CHECK(b.ffn_activation == APR_ACT_GELU_TANH);

  // A case written before ABI 1.3 (none of those members): llama's constants, as always.
  write_case(attn_out_case(), {}, {}, dir.path() / "old");
  const auto old_json = nlohmann::json::parse(std::ifstream(dir.path() / "old" / "case.json"));
  CHECK(old_json["config"].size() == 11);
  const KernelCase old = read_case(dir.path() / "old");
  CHECK(old.config.layer_window(2) == 0);
  CHECK(old.config.layer_rope_base(2) == old.config.rope_freq_base);
  CHECK(old.config.query_scale() == Approx(0.5));  // 1/sqrt(head_dim 4)
  CHECK(old.config.attn_softcap == 0.0f);
  CHECK(old.config.final_softcap == 0.0f);
  CHECK(old.config.embd_scale == 0.0f);
  CHECK(old.config.ffn_activation == APR_ACT_SILU);
}

TEST_CASE("the newer stages round-trip by name, with their kernel", "[trace][case]") {
  ScratchDir dir("case-stages");
  for (apr_stage s : {APR_STAGE_Q_NORM, APR_STAGE_K_NORM, APR_STAGE_ATTN_POST_NORM,
                      APR_STAGE_FFN_GELU, APR_STAGE_FFN_GEGLU, APR_STAGE_FFN_POST_NORM}) {
    KernelCase c = attn_out_case();
    c.stage = s;
    const std::string name(trace::stage_name(s));
    write_case(c, {}, {}, dir.path() / name);
    const auto j = nlohmann::json::parse(std::ifstream(dir.path() / name / "case.json"));
    CHECK(j["stage"] == name);
    CHECK(j["kernel"] ==
          (s == APR_STAGE_FFN_GELU || s == APR_STAGE_FFN_GEGLU ? "swiglu" : "rms_norm"));
    CHECK(read_case(dir.path() / name).stage == s);
  }
}

TEST_CASE("a malformed member of a newer family is refused with its field named", "[trace][case]") {
  ScratchDir dir("case-family-bad");
  int n = 0;
  const auto bad = [&](const char* key, nlohmann::json value) {
    const auto d = dir.path() / std::to_string(n++);
    write_case(attn_out_case(), {}, {}, d);
    nlohmann::json j = nlohmann::json::parse(std::ifstream(d / "case.json"));
    j["config"][key] = value;
    std::ofstream(d / "case.json") << j.dump();
    try {
      read_case(d);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("<read>");
  };
  CHECK_THAT(bad("ffn_activation", 7), Catch::Contains("config.ffn_activation"));
  CHECK_THAT(bad("window", -2), Catch::Contains("config.window"));
  CHECK_THAT(bad("attn_softcap", -1.0), Catch::Contains("config.attn_softcap"));
  CHECK_THAT(bad("attn_scale", 0.0),
             Catch::Contains("config.attn_scale: is not a finite positive"));
  CHECK_THAT(bad("final_softcap", "30"), Catch::Contains("config.final_softcap: is not a number"));
  CHECK_THAT(bad("embd_scale", -3), Catch::Contains("config.embd_scale"));
}
