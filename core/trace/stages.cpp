// SPDX-License-Identifier: MIT
#include "trace/stages.hpp"

#include <algorithm>
#include <cctype>

#include "common/error.hpp"
#include "model/model_config.hpp"

namespace apr::trace {

namespace {

// Indexed by apr_stage; the ABI numbers stages in forward order.
constexpr std::array<std::string_view, kStageCount> kNames = {
    "embedding",          "attn_norm",   "qkv_matmul",        "qkv_bias",   "q_post_rope",
    "k_post_rope",        "attn_scores", "attn_softmax",      "attention",  "attn_out",
    "post_attn_residual", "ffn_norm",    "ffn_gate",          "ffn_up",     "ffn_silu",
    "ffn_swigl",          "ffn_out",     "post_ffn_residual", "final_norm", "lm_head"};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view stage_name(apr_stage stage) {
  if (stage >= kStageCount) throw Error("unknown trace stage id " + std::to_string(stage));
  return kNames[stage];
}

std::optional<apr_stage> stage_from_name(std::string_view name) {
  for (apr_stage s = 0; s < kStageCount; ++s)
    if (iequals(kNames[s], name)) return s;
  return std::nullopt;
}

const std::array<apr_stage, kStageCount>& stages_in_forward_order() {
  static const auto order = [] {
    std::array<apr_stage, kStageCount> a{};
    for (apr_stage s = 0; s < kStageCount; ++s) a[s] = s;
    return a;
  }();
  return order;
}

std::string valid_stage_names() {
  std::string out;
  for (auto n : kNames) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

bool is_whole_model_stage(apr_stage stage) {
  return stage == APR_STAGE_FINAL_NORM || stage == APR_STAGE_LM_HEAD;
}

bool stage_exists_in_layer(apr_stage stage, uint32_t layer) {
  if (is_whole_model_stage(stage)) return layer == APR_LAYER_NONE;
  if (layer == APR_LAYER_NONE) return false;
  return stage != APR_STAGE_EMBEDDING || layer == 0;
}

uint64_t forward_rank(uint32_t layer, apr_stage stage) {
  // APR_LAYER_NONE is the largest u32, so whole-model stages sort after every layer.
  return (uint64_t(layer) << 32) | stage;
}

std::vector<uint64_t> expected_shape(apr_stage stage, const ModelConfig& c, uint32_t n_tokens) {
  const uint64_t rows = n_tokens;
  switch (stage) {
    case APR_STAGE_EMBEDDING:
    case APR_STAGE_ATTN_NORM:
    case APR_STAGE_ATTN_OUT:
    case APR_STAGE_POST_ATTN_RESIDUAL:
    case APR_STAGE_FFN_NORM:
    case APR_STAGE_FFN_OUT:
    case APR_STAGE_POST_FFN_RESIDUAL:
    case APR_STAGE_FINAL_NORM:
      return {rows, c.n_embd};
    case APR_STAGE_QKV_MATMUL:
      return {rows, c.qkv_dim()};
    case APR_STAGE_QKV_BIAS:
      if (!c.has_qkv_bias) return {};
      return {rows, c.qkv_dim()};
    case APR_STAGE_Q_POST_ROPE:
    case APR_STAGE_ATTENTION:
      return {rows, c.q_dim()};
    case APR_STAGE_K_POST_ROPE:
      return {rows, c.kv_dim()};
    case APR_STAGE_ATTN_SCORES:
    case APR_STAGE_ATTN_SOFTMAX:
      return {c.n_head, rows, rows};
    case APR_STAGE_FFN_GATE:
    case APR_STAGE_FFN_UP:
    case APR_STAGE_FFN_SILU:
    case APR_STAGE_FFN_SWIGLU:
      return {rows, c.n_ff};
    case APR_STAGE_LM_HEAD:
      return {c.n_vocab};
    default:
      throw Error("unknown trace stage id " + std::to_string(stage));
  }
}

}  // namespace apr::trace
