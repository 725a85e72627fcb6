// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "trace_capture/trace_plan.hpp"
#include "trace_format/stages.hpp"

using namespace apr;
using namespace apr::trace;

TEST_CASE("stage names match the APRT file names in forward order", "[trace][stages]") {
  const char* expected[] = {
      "embedding",          "attn_norm",   "qkv_matmul",        "qkv_bias",   "q_post_rope",
      "k_post_rope",        "attn_scores", "attn_softmax",      "attention",  "attn_out",
      "post_attn_residual", "ffn_norm",    "ffn_gate",          "ffn_up",     "ffn_silu",
      "ffn_swigl",          "ffn_out",     "post_ffn_residual", "final_norm", "lm_head"};
  REQUIRE(kStageCount == 20);
  const auto& order = stages_in_forward_order();
  for (uint32_t i = 0; i < kStageCount; ++i) {
    CHECK(stage_name(order[i]) == expected[i]);
    CHECK(stage_from_name(expected[i]) == order[i]);
  }
  CHECK(stage_name(APR_STAGE_FFN_SWIGLU) == "ffn_swigl");
  CHECK(stage_from_name("FFN_SwiGl") == APR_STAGE_FFN_SWIGLU);
  CHECK_FALSE(stage_from_name("ffn_swiglu").has_value());
  CHECK_THROWS_AS(stage_name(kStageCount), Error);
}

TEST_CASE("forward rank orders layers, then whole-model stages", "[trace][stages]") {
  CHECK(forward_rank(0, APR_STAGE_EMBEDDING) < forward_rank(0, APR_STAGE_ATTN_NORM));
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
  CHECK_FALSE(all.wants(APR_STAGE_FFN_SILU, 4));
  CHECK(all.wants(APR_STAGE_LM_HEAD, APR_LAYER_NONE));
}
