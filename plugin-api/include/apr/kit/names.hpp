// SPDX-License-Identifier: MIT
// The ABI's vocabularies, spelled once for the host and every plugin: trace stage names and the
// shape each stage has, and ggml weight-type names with their block geometry. plugin.h defines
// the numbers; these tables are the only place that gives them names.
#pragma once

#include <apr/plugin.h>

#include <array>
#include <cstdint>
#include <string_view>

namespace apr_sdk {

// ---- trace stages ------------------------------------------------------------------------------

// Where a stage exists: in every layer, only in layer 0, or once for the whole model
// (layer APR_LAYER_NONE).
enum class StageScope : uint8_t { kEveryLayer, kFirstLayer, kWholeModel };

// A stage's shape in terms of the model: rows are the tokens of the batch, n_kv the attention
// length (rows before any are cached).
enum class StageShape : uint8_t {
  kRowsHidden,    // rows x hidden
  kRowsQkv,       // rows x (q_dim + 2 kv_dim)
  kRowsQ,         // rows x q_dim
  kRowsKv,        // rows x kv_dim
  kHeadsRowsNkv,  // heads x rows x n_kv
  kRowsFfn,       // rows x ffn
  kVocab,         // vocab (last row only)
};

struct StageInfo {
  apr_stage stage;
  std::string_view name;  // file name of the stage in a trace directory (APRT, aprender)
  StageScope scope;
  StageShape shape;
  bool optional;  // only some models have it (QKV bias, the stages of ABI 1.3)
};

// Indexed by apr_stage. The stages of ABI 1.0 are numbered in forward order; those 1.3 appended
// sit between them (kForwardOrder). "ffn_swigl" is the name aprender's trace files use.
inline constexpr std::array<StageInfo, APR_STAGE_COUNT_V1_3> kStages = {{
    {APR_STAGE_EMBEDDING, "embedding", StageScope::kFirstLayer, StageShape::kRowsHidden, false},
    {APR_STAGE_ATTN_NORM, "attn_norm", StageScope::kEveryLayer, StageShape::kRowsHidden, false},
    {APR_STAGE_QKV_MATMUL, "qkv_matmul", StageScope::kEveryLayer, StageShape::kRowsQkv, false},
    {APR_STAGE_QKV_BIAS, "qkv_bias", StageScope::kEveryLayer, StageShape::kRowsQkv, true},
    {APR_STAGE_Q_POST_ROPE, "q_post_rope", StageScope::kEveryLayer, StageShape::kRowsQ, false},
    {APR_STAGE_K_POST_ROPE, "k_post_rope", StageScope::kEveryLayer, StageShape::kRowsKv, false},
    {APR_STAGE_ATTN_SCORES, "attn_scores", StageScope::kEveryLayer, StageShape::kHeadsRowsNkv,
     false},
    {APR_STAGE_ATTN_SOFTMAX, "attn_softmax", StageScope::kEveryLayer, StageShape::kHeadsRowsNkv,
     false},
    {APR_STAGE_ATTENTION, "attention", StageScope::kEveryLayer, StageShape::kRowsQ, false},
    {APR_STAGE_ATTN_OUT, "attn_out", StageScope::kEveryLayer, StageShape::kRowsHidden, false},
    {APR_STAGE_POST_ATTN_RESIDUAL, "post_attn_residual", StageScope::kEveryLayer,
     StageShape::kRowsHidden, false},
    {APR_STAGE_FFN_NORM, "ffn_norm", StageScope::kEveryLayer, StageShape::kRowsHidden, false},
    {APR_STAGE_FFN_GATE, "ffn_gate", StageScope::kEveryLayer, StageShape::kRowsFfn, false},
    {APR_STAGE_FFN_UP, "ffn_up", StageScope::kEveryLayer, StageShape::kRowsFfn, false},
    {APR_STAGE_FFN_SILU, "ffn_silu", StageScope::kEveryLayer, StageShape::kRowsFfn, false},
    {APR_STAGE_FFN_SWIGLU, "ffn_swigl", StageScope::kEveryLayer, StageShape::kRowsFfn, false},
    {APR_STAGE_FFN_OUT, "ffn_out", StageScope::kEveryLayer, StageShape::kRowsHidden, false},
    {APR_STAGE_POST_FFN_RESIDUAL, "post_ffn_residual", StageScope::kEveryLayer,
     StageShape::kRowsHidden, false},
    {APR_STAGE_FINAL_NORM, "final_norm", StageScope::kWholeModel, StageShape::kRowsHidden, false},
    {APR_STAGE_LM_HEAD, "lm_head", StageScope::kWholeModel, StageShape::kVocab, false},
    {APR_STAGE_Q_NORM, "q_norm", StageScope::kEveryLayer, StageShape::kRowsQ, true},
    {APR_STAGE_K_NORM, "k_norm", StageScope::kEveryLayer, StageShape::kRowsKv, true},
    {APR_STAGE_ATTN_POST_NORM, "attn_post_norm", StageScope::kEveryLayer, StageShape::kRowsHidden,
     true},
    {APR_STAGE_FFN_GELU, "ffn_gelu", StageScope::kEveryLayer, StageShape::kRowsFfn, true},
    {APR_STAGE_FFN_GEGLU, "ffn_geglu", StageScope::kEveryLayer, StageShape::kRowsFfn, true},
    {APR_STAGE_FFN_POST_NORM, "ffn_post_norm", StageScope::kEveryLayer, StageShape::kRowsHidden,
     true},
}};

// Every stage in the order the forward pass produces them within a layer (the embedding first,
// the whole-model stages last). A model has a subset of them.
inline constexpr std::array<apr_stage, APR_STAGE_COUNT_V1_3> kForwardOrder = {
    APR_STAGE_EMBEDDING,      APR_STAGE_ATTN_NORM,
    APR_STAGE_QKV_MATMUL,     APR_STAGE_QKV_BIAS,
    APR_STAGE_Q_NORM,         APR_STAGE_K_NORM,
    APR_STAGE_Q_POST_ROPE,    APR_STAGE_K_POST_ROPE,
    APR_STAGE_ATTN_SCORES,    APR_STAGE_ATTN_SOFTMAX,
    APR_STAGE_ATTENTION,      APR_STAGE_ATTN_OUT,
    APR_STAGE_ATTN_POST_NORM, APR_STAGE_POST_ATTN_RESIDUAL,
    APR_STAGE_FFN_NORM,       APR_STAGE_FFN_GATE,
    APR_STAGE_FFN_UP,         APR_STAGE_FFN_SILU,
    APR_STAGE_FFN_GELU,       APR_STAGE_FFN_SWIGLU,
    APR_STAGE_FFN_GEGLU,      APR_STAGE_FFN_OUT,
    APR_STAGE_FFN_POST_NORM,  APR_STAGE_POST_FFN_RESIDUAL,
    APR_STAGE_FINAL_NORM,     APR_STAGE_LM_HEAD};

// A stage's index in kForwardOrder; kForwardOrder.size() for an unknown id.
constexpr uint32_t forward_position(apr_stage stage) {
  for (uint32_t i = 0; i < kForwardOrder.size(); ++i)
    if (kForwardOrder[i] == stage) return i;
  return static_cast<uint32_t>(kForwardOrder.size());
}

// nullptr for an id this header does not know.
constexpr const StageInfo* stage_info(apr_stage stage) {
  return stage < kStages.size() ? &kStages[stage] : nullptr;
}

// The stage called `name` (exact spelling), or nullptr.
constexpr const StageInfo* stage_named(std::string_view name) {
  for (const StageInfo& s : kStages)
    if (s.name == name) return &s;
  return nullptr;
}

// ---- weight types --------------------------------------------------------------------------

struct WeightType {
  apr_type id;
  std::string_view name;
  uint32_t block_elems;  // elements per block; 0 for ids ggml has removed
  uint32_t block_bytes;  // bytes per block
};

// Every ggml type id a GGUF file may carry, indexed by id (ggml's GGML_TYPE_COUNT entries).
inline constexpr std::array<WeightType, 43> kWeightTypes = {{
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {4, "Q4_2", 0, 0},        {5, "Q4_3", 0, 0},
    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},
    {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},
    {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},   {14, "Q6_K", 256, 210},
    {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},
    {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136},
    {24, "I8", 1, 1},         {25, "I16", 1, 2},        {26, "I32", 1, 4},
    {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},       {31, "Q4_0_4_4", 0, 0},   {32, "Q4_0_4_8", 0, 0},
    {33, "Q4_0_8_8", 0, 0},   {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},
    {36, "IQ4_NL_4_4", 0, 0}, {37, "IQ4_NL_4_8", 0, 0}, {38, "IQ4_NL_8_8", 0, 0},
    {39, "MXFP4", 32, 17},    {40, "NVFP4", 64, 36},    {41, "Q1_0", 128, 18},
    {42, "Q2_0", 64, 18},
}};

// The weight types the ABI names (APR_TYPE_*): what apr reads from GGUF and hands to plugins.
inline constexpr std::array<apr_type, 13> kAbiWeightTypes = {
    APR_TYPE_F32,  APR_TYPE_F16,  APR_TYPE_BF16, APR_TYPE_Q4_0, APR_TYPE_Q4_1,
    APR_TYPE_Q5_0, APR_TYPE_Q5_1, APR_TYPE_Q8_0, APR_TYPE_Q2_K, APR_TYPE_Q3_K,
    APR_TYPE_Q4_K, APR_TYPE_Q5_K, APR_TYPE_Q6_K};

// nullptr for ids past the table and ids ggml removed.
constexpr const WeightType* weight_type(apr_type id) {
  return id < kWeightTypes.size() && kWeightTypes[id].block_elems != 0 ? &kWeightTypes[id]
                                                                       : nullptr;
}

constexpr bool is_abi_weight_type(apr_type id) {
  for (apr_type t : kAbiWeightTypes)
    if (t == id) return true;
  return false;
}

// "Q4_K", or "" for an id without an entry (callers add the number).
constexpr std::string_view weight_type_name(apr_type id) {
  const WeightType* t = weight_type(id);
  return t ? t->name : std::string_view{};
}

}  // namespace apr_sdk
