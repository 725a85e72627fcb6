// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "model/model_config.hpp"
#include "test_support.hpp"
#include "trace_capture/trace_writer.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/atomic_file.hpp"
#include "trace_format/manifest.hpp"
#include "trace_format/stages.hpp"
#include "trace_format/trace_dir.hpp"

using namespace apr;
using namespace apr::trace;
using apr::trace::testing::random_values;
using apr::trace::testing::ScratchDir;

namespace {

// hidden 8, 2 heads of 4 with 1 KV head, ffn 12, vocab 20, QKV biases.
ModelConfig known_config() {
  ModelConfig c;
  c.n_embd = 8;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_head_kv = 1;
  c.head_dim = 4;
  c.n_ff = 12;
  c.n_vocab = 20;
  c.has_qkv_bias = true;
  return c;
}

// Emits one tensor through the C sink, as a plugin would.
apr_status emit(const apr_trace_sink* sink, apr_stage stage, uint32_t layer,
                const std::vector<uint64_t>& shape, const std::vector<float>& data) {
  apr_trace_tensor t{};
  t.struct_size = sizeof t;
  t.stage = stage;
  t.layer = layer;
  t.dtype = APR_TYPE_F32;
  t.ndim = static_cast<uint32_t>(shape.size());
  for (int i = 0; i < 4; ++i) t.shape[i] = i < int(shape.size()) ? shape[i] : 1;
  t.data = data.data();
  t.nbytes = data.size() * sizeof(float);
  if (!sink->wants(sink->user_data, stage, layer)) return -1;
  return sink->emit(sink->user_data, &t);
}

std::vector<unsigned char> bytes_of(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("every stage's file has the header and size of its shape", "[trace][writer]") {
  // The llama/qwen2 layout, or a gemma3-like one: QK-norm, sandwich norms and GELU, no biases.
  const bool newer = GENERATE(false, true);
  ModelConfig cfg = known_config();
  if (newer) {
    cfg.has_qkv_bias = false;
    cfg.has_qk_norm = true;
    cfg.has_post_norms = true;
    cfg.ffn_activation = APR_ACT_GELU_TANH;
  }
  INFO((newer ? "gemma3-like" : "qwen2-like"));
  const uint32_t n_tokens = 3;
  // Element counts worked out by hand for the configuration above.
  const std::map<std::string, uint32_t> expected = {{"embedding", 24},
                                                    {"attn_norm", 24},
                                                    {"qkv_matmul", 48},
                                                    {"qkv_bias", 48},
                                                    {"q_post_rope", 24},
                                                    {"k_post_rope", 12},
                                                    {"attn_scores", 18},
                                                    {"attn_softmax", 18},
                                                    {"attention", 24},
                                                    {"attn_out", 24},
                                                    {"post_attn_residual", 24},
                                                    {"ffn_norm", 24},
                                                    {"ffn_gate", 36},
                                                    {"ffn_up", 36},
                                                    {"ffn_silu", 36},
                                                    {"ffn_swigl", 36},
                                                    {"ffn_out", 24},
                                                    {"post_ffn_residual", 24},
                                                    {"final_norm", 24},
                                                    {"lm_head", 20},
                                                    {"q_norm", 24},
                                                    {"k_norm", 12},
                                                    {"attn_post_norm", 24},
                                                    {"ffn_gelu", 36},
                                                    {"ffn_geglu", 36},
                                                    {"ffn_post_norm", 24}};

  ScratchDir dir("writer");
  TraceWriter writer(dir.path(), TracePlan::everything(cfg.n_layer));
  uint32_t seed = 1;
  for (uint32_t layer : {0u, 1u, APR_LAYER_NONE}) {
    for (apr_stage s : stages_in_forward_order()) {
      if (!stage_exists_in_layer(s, layer)) continue;
      const auto shape = expected_shape(s, cfg, n_tokens);
      CHECK(shape.empty() == !cfg.has_stage(s));
      if (shape.empty()) continue;  // the model has no such stage
      uint64_t n = 1;
      for (auto d : shape) n *= d;
      REQUIRE(emit(writer.sink(), s, layer, shape, random_values(n, seed++)) == APR_OK);
    }
  }
  REQUIRE_FALSE(writer.error());

  for (uint32_t layer : {0u, 1u, APR_LAYER_NONE}) {
    for (apr_stage s : stages_in_forward_order()) {
      if (!stage_exists_in_layer(s, layer) || !cfg.has_stage(s)) continue;
      const std::string name(stage_name(s));
      const auto path = dir.path() / stage_file_path(s, layer);
      INFO(path);
      const auto b = bytes_of(path);
      const uint32_t count = expected.at(name);
      REQUIRE(b.size() == 12 + 4 * size_t(count));
      CHECK(std::string(b.begin(), b.begin() + 4) == "APRT");
      const uint32_t l = b[4] | b[5] << 8 | b[6] << 16 | uint32_t(b[7]) << 24;
      const uint32_t c = b[8] | b[9] << 8 | b[10] << 16 | uint32_t(b[11]) << 24;
      CHECK(l == layer);
      CHECK(c == count);
    }
  }
  CHECK(std::filesystem::exists(dir.path() / "layer-0" / "embedding.bin"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "layer-1" / "embedding.bin"));
  CHECK(std::filesystem::exists(dir.path() / "lm_head.bin"));
  CHECK(std::filesystem::exists(dir.path() / "layer-1" /
                                (newer ? "ffn_geglu.bin" : "ffn_swigl.bin")));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "layer-1" /
                                      (newer ? "ffn_swigl.bin" : "ffn_geglu.bin")));

  // 18 stages in layer 0 (embedding, qkv_bias, silu, swigl), or 21 (embedding, q/k_norm, the
  // post norms, gelu, geglu); one fewer in layer 1; final_norm and lm_head.
  const auto files = writer.files();
  REQUIRE(files.size() == (newer ? 21 + 20 : 18 + 17) + 2);
  CHECK(files.front().path == "layer-0/embedding.bin");
  CHECK(files.back().path == "lm_head.bin");
  // In forward order: q_norm and k_norm between the QKV product and RoPE.
  const size_t scores = newer ? 7 : 6;
  CHECK(files[scores].stage == APR_STAGE_ATTN_SCORES);
  CHECK(files[scores].shape == std::vector<uint64_t>{2, 3, 3});
  if (newer) {
    CHECK(files[3].stage == APR_STAGE_Q_NORM);
    CHECK(files[4].stage == APR_STAGE_K_NORM);
    CHECK(files[5].stage == APR_STAGE_Q_POST_ROPE);
    CHECK(files[11].stage == APR_STAGE_ATTN_POST_NORM);
    CHECK(files[12].stage == APR_STAGE_POST_ATTN_RESIDUAL);
    CHECK(files[16].stage == APR_STAGE_FFN_GELU);
    CHECK(files[17].stage == APR_STAGE_FFN_GEGLU);
    CHECK(files[19].stage == APR_STAGE_FFN_POST_NORM);
    CHECK(files[20].stage == APR_STAGE_POST_FFN_RESIDUAL);
  }
}

TEST_CASE("the sink copies only what the plan wants", "[trace][writer]") {
  ScratchDir dir("writer-plan");
  TraceWriter writer(dir.path(), TracePlan(parse_stage_list("ffn_out,lm_head"), {1, 2}));
  const apr_trace_sink* sink = writer.sink();
  CHECK(sink->struct_size == sizeof(apr_trace_sink));
  CHECK(sink->wants(sink->user_data, APR_STAGE_FFN_OUT, 1));
  CHECK_FALSE(sink->wants(sink->user_data, APR_STAGE_FFN_OUT, 0));
  CHECK_FALSE(sink->wants(sink->user_data, APR_STAGE_ATTN_NORM, 1));
  CHECK(sink->wants(sink->user_data, APR_STAGE_LM_HEAD, APR_LAYER_NONE));
}

TEST_CASE("malformed tensors abort the plugin call and are reported", "[trace][writer]") {
  ScratchDir dir("writer-bad");
  TraceWriter writer(dir.path(), TracePlan::everything(2));
  auto v = random_values(6, 9);
  apr_trace_tensor t{};
  t.struct_size = sizeof t;
  t.stage = APR_STAGE_ATTN_NORM;
  t.layer = 0;
  t.dtype = APR_TYPE_F32;
  t.ndim = 2;
  t.shape[0] = 2;
  t.shape[1] = 4;  // 8 elements, but only 6 handed over
  t.shape[2] = t.shape[3] = 1;
  t.data = v.data();
  t.nbytes = v.size() * 4;
  CHECK(writer.sink()->emit(writer.sink()->user_data, &t) == APR_ERR_ABORTED);
  REQUIRE(writer.error());
  CHECK_THAT(*writer.error(), Catch::Contains("attn_norm") && Catch::Contains("nbytes"));
  CHECK(writer.files().empty());

  TraceWriter w2(dir.path(), TracePlan::everything(2));
  t.shape[1] = 3;
  t.dtype = APR_TYPE_F16;
  CHECK(w2.sink()->emit(w2.sink()->user_data, &t) == APR_ERR_ABORTED);
  CHECK_THAT(*w2.error(), Catch::Contains("not f32"));
  CHECK(w2.sink()->emit(w2.sink()->user_data, nullptr) == APR_ERR_ABORTED);
}

TEST_CASE("manifest round trip and directory listing", "[trace][manifest]") {
  ScratchDir dir("manifest");
  TraceWriter writer(dir.path(), TracePlan::everything(1));
  const auto v = random_values(16, 2);
  REQUIRE(emit(writer.sink(), APR_STAGE_ATTN_NORM, 0, {2, 8}, v) == APR_OK);
  REQUIRE(emit(writer.sink(), APR_STAGE_LM_HEAD, APR_LAYER_NONE, {16}, v) == APR_OK);
  Manifest m;
  m.model_path = "/models/x.gguf";
  m.model_sha256 = std::string(64, 'a');
  m.architecture = "qwen2";
  m.backend = "cpu";
  m.plugin_version = "0.1.0";
  m.prompt = "What is 2+2?";
  m.token_ids = {1, 2, 3};
  m.files = writer.files();
  write_manifest(dir.path(), m);

  const auto j = nlohmann::json::parse(std::ifstream(dir.path() / "manifest.json"));
  CHECK(j["format"] == "apr-trace-manifest-v1");
  CHECK(j["model"]["sha256"] == std::string(64, 'a'));
  CHECK(j["backend"]["plugin_version"] == "0.1.0");
  CHECK(j["files"][0]["path"] == "layer-0/attn_norm.bin");
  CHECK(j["files"][0]["shape"] == nlohmann::json::array({2, 8}));
  CHECK(j["files"][1]["layer"].is_null());
  CHECK(j["files"][1]["dtype"] == "f32");

  const Manifest back = read_manifest(dir.path() / "manifest.json");
  CHECK(back.prompt == m.prompt);
  CHECK(back.token_ids == m.token_ids);
  REQUIRE(back.files.size() == 2);
  CHECK(back.files[1].layer == APR_LAYER_NONE);
  CHECK(manifest_to_json(back) == manifest_to_json(m));

  const auto listed = list_trace_directory(dir.path());
  REQUIRE(listed.files.size() == 2);
  CHECK(listed.files[0].stage == APR_STAGE_ATTN_NORM);

  // A manifest that points outside the directory is refused.
  std::ofstream(dir.path() / "manifest.json")
      << R"({"format":"apr-trace-manifest-v1","model":{},"backend":{},"files":[)"
      << R"({"path":"../../etc/passwd","stage":"attn_norm","layer":0,"shape":[1]}]})";
  CHECK_THROWS_WITH(list_trace_directory(dir.path()), Catch::Contains("files[0]"));
  std::ofstream(dir.path() / "manifest.json") << "{not json";
  CHECK_THROWS_WITH(list_trace_directory(dir.path()), Catch::Contains("not valid JSON"));
  std::ofstream(dir.path() / "manifest.json") << R"({"format":"apr-trace-manifest-v1"})";
  CHECK_THROWS_AS(list_trace_directory(dir.path()), Error);
}

TEST_CASE("a plain APRT tree without a manifest is listed from its paths", "[trace][manifest]") {
  ScratchDir dir("plain-tree");
  const auto v = random_values(4, 3);
  std::filesystem::create_directories(dir.path() / "layer-0");
  std::filesystem::create_directories(dir.path() / "layer-10");
  std::filesystem::create_directories(dir.path() / "layer-x");
  write_aprt(dir.path() / "layer-10" / "ffn_out.bin", 10, v);
  write_aprt(dir.path() / "layer-0" / "Attn_Norm.bin", 0, v);
  write_aprt(dir.path() / "layer-0" / "notes.bin", 0, v);
  write_aprt(dir.path() / "layer-x" / "ffn_out.bin", 0, v);
  write_aprt(dir.path() / "final_norm.bin", APR_LAYER_NONE, v);
  write_aprt(dir.path() / "attn_norm.bin", APR_LAYER_NONE, v);  // not a whole-model stage
  const auto t = list_trace_directory(dir.path());
  REQUIRE(t.files.size() == 3);
  CHECK(t.files[0].layer == 0);
  CHECK(t.files[1].layer == 10);
  CHECK(t.files[2].stage == APR_STAGE_FINAL_NORM);
  CHECK_FALSE(t.manifest);
  CHECK_THROWS_WITH(list_trace_directory(dir.path() / "nope"),
                    Catch::Contains("not a trace directory"));
}

TEST_CASE("a full disk aborts the plugin call with the write error", "[trace][writer][atomic]") {
  ScratchDir dir("writer-full");
  TraceWriter writer(dir.path(), TracePlan::everything(1));
  simulate_disk_full_for_testing(true, 16);
  const apr_status status =
      emit(writer.sink(), APR_STAGE_ATTN_NORM, 0, {2, 8}, random_values(16, 4));
  simulate_disk_full_for_testing(false);
  CHECK(status == APR_ERR_ABORTED);
  REQUIRE(writer.error());
  CHECK_THAT(*writer.error(),
             Catch::Contains("attn_norm.bin") && Catch::Contains("No space left on device"));
  CHECK(writer.files().empty());
  CHECK_FALSE(std::filesystem::exists(dir.path() / "layer-0" / "attn_norm.bin"));
  CHECK(std::filesystem::is_empty(dir.path() / "layer-0"));
}

TEST_CASE("micro-batches of a split prompt are stitched into the unsplit tensors",
          "[trace][writer][ubatch]") {
  // A 5-token prompt in micro-batches of 2, 2 and 1 rows, against the same values emitted as one
  // batch. Attention scores are heads x rows x keys; keys past a row's position are 0 unsplit.
  const uint64_t heads = 2, rows = 5, cols = 3;
  const auto norm = random_values(rows * cols, 7);
  std::vector<float> scores(heads * rows * rows, 0.0f);
  const auto noise = random_values(scores.size(), 8);
  for (uint64_t h = 0; h < heads; ++h)
    for (uint64_t r = 0; r < rows; ++r)
      for (uint64_t k = 0; k <= r; ++k)
        scores[(h * rows + r) * rows + k] = noise[(h * rows + r) * rows + k];
  const auto head = random_values(20, 9);

  ScratchDir whole("stitch-whole"), split("stitch-split");
  {
    TraceWriter w(whole.path(), TracePlan::everything(1));
    w.begin_step(0);
    REQUIRE(emit(w.sink(), APR_STAGE_ATTN_NORM, 0, {rows, cols}, norm) == APR_OK);
    REQUIRE(emit(w.sink(), APR_STAGE_ATTN_SCORES, 0, {heads, rows, rows}, scores) == APR_OK);
    REQUIRE(emit(w.sink(), APR_STAGE_LM_HEAD, APR_LAYER_NONE, {20}, head) == APR_OK);
    w.end_step();
  }
  TraceWriter w(split.path(), TracePlan::everything(1), /*stitch=*/true);
  w.begin_step(0);
  uint64_t pos0 = 0;
  for (uint64_t n : {2, 2, 1}) {
    const std::vector<float> part_norm(norm.begin() + pos0 * cols,
                                       norm.begin() + (pos0 + n) * cols);
    const uint64_t keys = pos0 + n;  // a micro-batch sees the cache up to its last row
    std::vector<float> part_scores(heads * n * keys);
    for (uint64_t h = 0; h < heads; ++h)
      for (uint64_t r = 0; r < n; ++r)
        for (uint64_t k = 0; k < keys; ++k)
          part_scores[(h * n + r) * keys + k] = scores[(h * rows + pos0 + r) * rows + k];
    const std::vector<float> part_head = n == 1 ? head : random_values(20, 100 + pos0);
    REQUIRE(emit(w.sink(), APR_STAGE_ATTN_NORM, 0, {n, cols}, part_norm) == APR_OK);
    REQUIRE(emit(w.sink(), APR_STAGE_ATTN_SCORES, 0, {heads, n, keys}, part_scores) == APR_OK);
    REQUIRE(emit(w.sink(), APR_STAGE_LM_HEAD, APR_LAYER_NONE, {20}, part_head) == APR_OK);
    pos0 += n;
  }
  CHECK_FALSE(std::filesystem::exists(split.path() / "layer-0"));  // held until the step ends
  w.end_step();
  for (const char* rel : {"layer-0/attn_norm.bin", "layer-0/attn_scores.bin", "lm_head.bin"})
    CHECK(bytes_of(split.path() / rel) == bytes_of(whole.path() / rel));
  const auto files = w.files();
  REQUIRE(files.size() == 3);
  CHECK(files[0].shape == std::vector<uint64_t>{rows, cols});
  CHECK(files[1].shape == std::vector<uint64_t>{heads, rows, rows});
  CHECK(files[2].shape == std::vector<uint64_t>{20});

  // A micro-batch whose columns differ cannot be joined: the emit is refused with the reason.
  TraceWriter bad(split.path() / "bad", TracePlan::everything(1), true);
  bad.begin_step(0);
  REQUIRE(emit(bad.sink(), APR_STAGE_ATTN_NORM, 0, {1, 3}, random_values(3, 1)) == APR_OK);
  CHECK(emit(bad.sink(), APR_STAGE_ATTN_NORM, 0, {1, 4}, random_values(4, 1)) != APR_OK);
  REQUIRE(bad.error());
  CHECK_THAT(*bad.error(), Catch::Contains("cannot be joined"));
}

TEST_CASE("decode steps go under step-K/ and round-trip through a v2 manifest",
          "[trace][writer][manifest][steps]") {
  ScratchDir dir("steps");
  TraceWriter w(dir.path(), TracePlan::everything(1));
  const auto v = random_values(8, 4);
  for (uint32_t step = 0; step < 3; ++step) {
    w.begin_step(step);
    REQUIRE(emit(w.sink(), APR_STAGE_ATTN_NORM, 0, {1, 8}, v) == APR_OK);
    REQUIRE(emit(w.sink(), APR_STAGE_LM_HEAD, APR_LAYER_NONE, {8}, v) == APR_OK);
    w.end_step();
  }
  Manifest m;
  m.backend = "cpu";
  m.token_ids = {5, 6};
  m.steps = {{0, 0, {5, 6}, 7}, {1, 2, {7}, 3}, {2, 3, {3}, std::nullopt}};
  m.files = w.files();
  write_manifest(dir.path(), m);
  CHECK(std::filesystem::is_regular_file(dir.path() / "layer-0" / "attn_norm.bin"));
  CHECK(std::filesystem::is_regular_file(dir.path() / "step-2" / "layer-0" / "attn_norm.bin"));
  CHECK(std::filesystem::is_regular_file(dir.path() / "step-1" / "lm_head.bin"));

  const auto j = nlohmann::json::parse(std::ifstream(dir.path() / "manifest.json"));
  CHECK(j["format"] == "apr-trace-manifest-v2");
  CHECK(j["steps"][1]["pos0"] == 2);
  CHECK(j["steps"][1]["tokens"] == nlohmann::json::array({7}));
  CHECK(j["steps"][2]["next_token"].is_null());
  const Manifest back = read_manifest(dir.path() / "manifest.json");
  REQUIRE(back.steps.size() == 3);
  CHECK(back.steps[0].next_token == 7);
  CHECK(back.steps[1].tokens == std::vector<int32_t>{7});
  CHECK(manifest_to_json(back) == manifest_to_json(m));

  // Listed step by step, in forward order within each step; a plain tree lists the same.
  const auto listed = list_trace_directory(dir.path());
  REQUIRE(listed.files.size() == 6);
  CHECK((listed.files[2].step == 1 && listed.files[2].stage == APR_STAGE_ATTN_NORM));
  CHECK((listed.files[5].step == 2 && listed.files[5].stage == APR_STAGE_LM_HEAD));
  std::filesystem::remove(dir.path() / "manifest.json");
  const auto plain = list_trace_directory(dir.path());
  REQUIRE(plain.files.size() == 6);
  for (size_t i = 0; i < 6; ++i)
    CHECK((plain.files[i].step == listed.files[i].step &&
           plain.files[i].stage == listed.files[i].stage));

  // A v2 manifest whose file claims a step that is not listed, or misnumbered steps, is refused.
  auto edited = nlohmann::json::parse(manifest_to_json(m));
  edited["files"][5]["step"] = 9;
  std::ofstream(dir.path() / "manifest.json") << edited.dump();
  CHECK_THROWS_WITH(read_manifest(dir.path() / "manifest.json"), Catch::Contains("files[5].step"));
  Manifest gap = m;
  gap.steps[2].step = 5;
  std::ofstream(dir.path() / "manifest.json") << manifest_to_json(gap);
  CHECK_THROWS_WITH(read_manifest(dir.path() / "manifest.json"), Catch::Contains("steps[2].step"));
  // Without steps or micro-batches the manifest stays v1, as before.
  Manifest v1 = m;
  v1.steps.resize(1);
  std::erase_if(v1.files, [](const ManifestFile& f) { return f.step != 0; });
  CHECK(manifest_to_json(v1).find("apr-trace-manifest-v1") != std::string::npos);
  CHECK(manifest_to_json(v1).find("\"steps\"") == std::string::npos);
}
