// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "model/model_config.hpp"
#include "trace_capture/trace_plan.hpp"
#include "trace_format/stages.hpp"

using namespace apr;
using namespace apr::trace;

TEST_CASE("stage names match the APRT file names in forward order", "[trace][stages]") {
  // The stages of ABI 1.3 sit where the forward pass makes them: q_norm and k_norm between the
  // QKV product and RoPE, attn_post_norm before the attention residual, ffn_gelu and ffn_geglu
  // beside their silu counterparts, ffn_post_norm before the FFN residual.
  const char* expected[] = {
      "embedding", "attn_norm",   "qkv_matmul",     "qkv_bias",           "q_norm",
      "k_norm",    "q_post_rope", "k_post_rope",    "attn_scores",        "attn_softmax",
      "attention", "attn_out",    "attn_post_norm", "post_attn_residual", "ffn_norm",
      "ffn_gate",  "ffn_up",      "ffn_silu",       "ffn_gelu",           "ffn_swigl",
      "ffn_geglu", "ffn_out",     "ffn_post_norm",  "post_ffn_residual",  "final_norm",
      "lm_head"};
  REQUIRE(kStageCount == 26);
  REQUIRE(kStageCount == APR_STAGE_COUNT_V1_3);
  const auto& order = stages_in_forward_order();
  for (uint32_t i = 0; i < kStageCount; ++i) {
    CHECK(stage_name(order[i]) == expected[i]);
    CHECK(stage_from_name(expected[i]) == order[i]);
  }
  // The numbers are the ABI's: 1.0's in forward order, 1.3's appended after lm_head.
  CHECK(stage_from_name("lm_head") == APR_STAGE_LM_HEAD);
  CHECK(stage_from_name("q_norm") == APR_STAGE_Q_NORM);
  CHECK(stage_from_name("k_norm") == APR_STAGE_K_NORM);
  CHECK(stage_from_name("attn_post_norm") == APR_STAGE_ATTN_POST_NORM);
  CHECK(stage_from_name("ffn_gelu") == APR_STAGE_FFN_GELU);
  CHECK(stage_from_name("ffn_geglu") == APR_STAGE_FFN_GEGLU);
  CHECK(stage_from_name("ffn_post_norm") == APR_STAGE_FFN_POST_NORM);
  CHECK(stage_name(APR_STAGE_FFN_SWIGLU) == "ffn_swigl");
  CHECK(stage_from_name("FFN_SwiGl") == APR_STAGE_FFN_SWIGLU);
  CHECK_FALSE(stage_from_name("ffn_swiglu").has_value());
  CHECK_THROWS_AS(stage_name(kStageCount), Error);
  for (apr_stage s = APR_STAGE_COUNT_V1_0; s < APR_STAGE_COUNT_V1_3; ++s) {
    CHECK_FALSE(is_whole_model_stage(s));
    CHECK(stage_exists_in_layer(s, 0));
    CHECK(stage_exists_in_layer(s, 7));
  }
  CHECK_THAT(valid_stage_names(), Catch::StartsWith("embedding, attn_norm, qkv_matmul, qkv_bias, "
                                                    "q_norm, k_norm, q_post_rope"));
}

TEST_CASE("a model has the stages of its family", "[trace][stages]") {
  ModelConfig llama;
  ModelConfig gemma3;
  gemma3.has_qk_norm = true;
  gemma3.has_post_norms = true;
  gemma3.ffn_activation = APR_ACT_GELU_TANH;
  ModelConfig qwen2;
  qwen2.has_qkv_bias = true;
  for (apr_stage s : {APR_STAGE_Q_NORM, APR_STAGE_K_NORM, APR_STAGE_ATTN_POST_NORM,
                      APR_STAGE_FFN_GELU, APR_STAGE_FFN_GEGLU, APR_STAGE_FFN_POST_NORM}) {
    CHECK_FALSE(llama.has_stage(s));
    CHECK(expected_shape(s, llama, 3).empty());
    CHECK(gemma3.has_stage(s));
  }
  CHECK(llama.has_stage(APR_STAGE_FFN_SILU));
  CHECK_FALSE(gemma3.has_stage(APR_STAGE_FFN_SILU));
  CHECK_FALSE(gemma3.has_stage(APR_STAGE_FFN_SWIGLU));
  CHECK_FALSE(llama.has_stage(APR_STAGE_QKV_BIAS));
  CHECK(qwen2.has_stage(APR_STAGE_QKV_BIAS));
  CHECK_FALSE(llama.has_stage(kStageCount));
  gemma3.n_head = 4;
  gemma3.n_head_kv = 2;
  gemma3.head_dim = 8;
  gemma3.n_embd = 24;
  gemma3.n_ff = 40;
  CHECK(expected_shape(APR_STAGE_Q_NORM, gemma3, 3) == std::vector<uint64_t>{3, 32});
  CHECK(expected_shape(APR_STAGE_K_NORM, gemma3, 3) == std::vector<uint64_t>{3, 16});
  CHECK(expected_shape(APR_STAGE_ATTN_POST_NORM, gemma3, 3) == std::vector<uint64_t>{3, 24});
  CHECK(expected_shape(APR_STAGE_FFN_GEGLU, gemma3, 3) == std::vector<uint64_t>{3, 40});
  CHECK(expected_shape(APR_STAGE_FFN_POST_NORM, gemma3, 3) == std::vector<uint64_t>{3, 24});
}

TEST_CASE("forward rank orders layers, then whole-model stages", "[trace][stages]") {
  CHECK(forward_rank(0, APR_STAGE_EMBEDDING) < forward_rank(0, APR_STAGE_ATTN_NORM));
  // The 1.3 stages rank by their place in the layer, not by their number.
  CHECK(forward_rank(2, APR_STAGE_QKV_MATMUL) < forward_rank(2, APR_STAGE_Q_NORM));
  CHECK(forward_rank(2, APR_STAGE_Q_NORM) < forward_rank(2, APR_STAGE_K_NORM));
  CHECK(forward_rank(2, APR_STAGE_K_NORM) < forward_rank(2, APR_STAGE_Q_POST_ROPE));
  CHECK(forward_rank(2, APR_STAGE_ATTN_OUT) < forward_rank(2, APR_STAGE_ATTN_POST_NORM));
  CHECK(forward_rank(2, APR_STAGE_ATTN_POST_NORM) < forward_rank(2, APR_STAGE_POST_ATTN_RESIDUAL));
  CHECK(forward_rank(2, APR_STAGE_FFN_UP) < forward_rank(2, APR_STAGE_FFN_GELU));
  CHECK(forward_rank(2, APR_STAGE_FFN_GELU) < forward_rank(2, APR_STAGE_FFN_GEGLU));
  CHECK(forward_rank(2, APR_STAGE_FFN_GEGLU) < forward_rank(2, APR_STAGE_FFN_OUT));
  CHECK(forward_rank(2, APR_STAGE_FFN_OUT) < forward_rank(2, APR_STAGE_FFN_POST_NORM));
  CHECK(forward_rank(2, APR_STAGE_FFN_POST_NORM) < forward_rank(2, APR_STAGE_POST_FFN_RESIDUAL));
  CHECK(forward_rank(2, APR_STAGE_FFN_POST_NORM) < forward_rank(3, APR_STAGE_ATTN_NORM));
  CHECK(forward_rank(APR_LAYER_NONE, APR_STAGE_FINAL_NORM) >
        forward_rank(5, APR_STAGE_FFN_POST_NORM));
  CHECK(forward_rank(0, APR_STAGE_POST_FFN_RESIDUAL) < forward_rank(1, APR_STAGE_ATTN_NORM));
  CHECK(forward_rank(1000, APR_STAGE_POST_FFN_RESIDUAL) <
        forward_rank(APR_LAYER_NONE, APR_STAGE_FINAL_NORM));
  CHECK(forward_rank(APR_LAYER_NONE, APR_STAGE_FINAL_NORM) <
        forward_rank(APR_LAYER_NONE, APR_STAGE_LM_HEAD));
  CHECK(stage_exists_in_layer(APR_STAGE_EMBEDDING, 0));
  CHECK_FALSE(stage_exists_in_layer(APR_STAGE_EMBEDDING, 1));
  CHECK_FALSE(stage_exists_in_layer(APR_STAGE_FINAL_NORM, 0));
  CHECK(stage_exists_in_layer(APR_STAGE_LM_HEAD, APR_LAYER_NONE));
  CHECK_FALSE(stage_exists_in_layer(APR_STAGE_ATTN_NORM, APR_LAYER_NONE));
}

TEST_CASE("stage lists parse case-insensitively", "[trace][plan]") {
  auto s = parse_stage_list("attn_norm,FFN_OUT, Lm_Head");
  CHECK(s.count() == 3);
  CHECK(s.test(APR_STAGE_ATTN_NORM));
  CHECK(s.test(APR_STAGE_FFN_OUT));
  CHECK(s.test(APR_STAGE_LM_HEAD));
  CHECK(parse_stage_list("all").count() == kStageCount);
  CHECK(parse_stage_list("ALL").count() == kStageCount);
  CHECK(parse_stage_list("embedding,All").count() == kStageCount);
  auto n = parse_stage_list("Q_Norm,k_norm,attn_post_norm,ffn_gelu,ffn_geglu,ffn_post_norm");
  CHECK(n.count() == 6);
  CHECK(n.test(APR_STAGE_Q_NORM));
  CHECK(n.test(APR_STAGE_FFN_POST_NORM));
}

TEST_CASE("stage list errors name the fault", "[trace][plan]") {
  CHECK_THROWS_WITH(parse_stage_list(""), Catch::Contains("empty stage list"));
  CHECK_THROWS_WITH(parse_stage_list("attn_norm,,ffn_out"), Catch::Contains("empty stage name"));
  CHECK_THROWS_WITH(parse_stage_list("attn_norm,"), Catch::Contains("empty stage name"));
  CHECK_THROWS_WITH(parse_stage_list(",attn_norm"), Catch::Contains("empty stage name"));
  CHECK_THROWS_WITH(parse_stage_list("attn_nrm"),
                    Catch::Contains("unknown stage 'attn_nrm'") && Catch::Contains("embedding") &&
                        Catch::Contains("ffn_swigl") && Catch::Contains("lm_head"));
  CHECK_THROWS_AS(parse_stage_list("ffn_swiglu"), Error);
}

TEST_CASE("layer ranges are START..END with END exclusive", "[trace][plan]") {
  auto r = parse_layer_range("2..5");
  CHECK(r.begin == 2);
  CHECK(r.end == 5);
  CHECK(r.contains(2));
  CHECK(r.contains(4));
  CHECK_FALSE(r.contains(5));
  CHECK_FALSE(r.contains(1));
  CHECK(parse_layer_range("0..1").end == 1);
}

TEST_CASE("layer range errors", "[trace][plan]") {
  CHECK_THROWS_WITH(parse_layer_range("3..3"), Catch::Contains("must be greater"));
  CHECK_THROWS_WITH(parse_layer_range("5..2"), Catch::Contains("must be greater"));
  CHECK_THROWS_WITH(parse_layer_range("a..3"), Catch::Contains("'a' is not a layer number"));
  CHECK_THROWS_WITH(parse_layer_range("1..x"), Catch::Contains("'x' is not a layer number"));
  CHECK_THROWS_AS(parse_layer_range("-1..2"), Error);
  CHECK_THROWS_AS(parse_layer_range("..2"), Error);
  CHECK_THROWS_AS(parse_layer_range("1.."), Error);
  CHECK_THROWS_AS(parse_layer_range("1-3"), Error);
  CHECK_THROWS_AS(parse_layer_range("1..3..5"), Error);
  CHECK_THROWS_AS(parse_layer_range("99999999999..99999999999999"), Error);
}

TEST_CASE("a plan wants planned stages of planned layers only", "[trace][plan]") {
  TracePlan plan(parse_stage_list("embedding,attn_norm,final_norm"), parse_layer_range("1..3"));
  CHECK_FALSE(plan.wants(APR_STAGE_ATTN_NORM, 0));
  CHECK(plan.wants(APR_STAGE_ATTN_NORM, 1));
  CHECK(plan.wants(APR_STAGE_ATTN_NORM, 2));
  CHECK_FALSE(plan.wants(APR_STAGE_ATTN_NORM, 3));
  CHECK_FALSE(plan.wants(APR_STAGE_FFN_OUT, 1));
  CHECK(plan.wants(APR_STAGE_FINAL_NORM, APR_LAYER_NONE));
  CHECK_FALSE(plan.wants(APR_STAGE_LM_HEAD, APR_LAYER_NONE));
  // The embedding belongs to layer 0, which this plan leaves out.
  CHECK_FALSE(plan.wants(APR_STAGE_EMBEDDING, 0));
  CHECK_FALSE(plan.wants(kStageCount, 1));

  auto all = TracePlan::everything(4);
  CHECK(all.wants(APR_STAGE_EMBEDDING, 0));
  CHECK(all.wants(APR_STAGE_FFN_SILU, 3));
  CHECK(all.wants(APR_STAGE_Q_NORM, 3));
  CHECK(all.wants(APR_STAGE_FFN_POST_NORM, 0));
  CHECK_FALSE(all.wants(APR_STAGE_FFN_SILU, 4));
  CHECK(all.wants(APR_STAGE_LM_HEAD, APR_LAYER_NONE));
}
