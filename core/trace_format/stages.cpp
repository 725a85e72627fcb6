// SPDX-License-Identifier: MIT
#include "trace_format/stages.hpp"

#include <apr/kit/names.hpp>

#include <algorithm>
#include <cctype>

#include "common/error.hpp"
#include "model/model_config.hpp"

namespace apr::trace {

namespace {

using apr_sdk::kStages;
using apr_sdk::StageInfo;
using apr_sdk::StageScope;
using apr_sdk::StageShape;

static_assert(kStages.size() == kStageCount);

// The table is indexed by stage number, and the forward order names every stage once.
constexpr bool table_indexed_by_stage() {
  for (apr_stage s = 0; s < kStageCount; ++s)
    if (kStages[s].stage != s || apr_sdk::forward_position(s) >= kStageCount) return false;
  return true;
}
static_assert(table_indexed_by_stage());
static_assert(apr_sdk::kForwardOrder.size() == kStageCount);

const StageInfo& info(apr_stage stage) {
  const StageInfo* s = apr_sdk::stage_info(stage);
  if (!s) throw Error("unknown trace stage id " + std::to_string(stage));
  return *s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view stage_name(apr_stage stage) {
  return info(stage).name;
}

std::optional<apr_stage> stage_from_name(std::string_view name) {
  for (const StageInfo& s : kStages)
    if (iequals(s.name, name)) return s.stage;
  return std::nullopt;
}

const std::array<apr_stage, kStageCount>& stages_in_forward_order() {
  static const auto order = [] {
    std::array<apr_stage, kStageCount> a{};
    for (size_t i = 0; i < kStageCount; ++i) a[i] = apr_sdk::kForwardOrder[i];
    return a;
  }();
  return order;
}

std::string valid_stage_names() {
  std::string out;
  for (apr_stage s : apr_sdk::kForwardOrder) {
    if (!out.empty()) out += ", ";
    out += kStages[s].name;
  }
  return out;
}

bool is_whole_model_stage(apr_stage stage) {
  const StageInfo* s = apr_sdk::stage_info(stage);
  return s && s->scope == StageScope::kWholeModel;
}

bool stage_exists_in_layer(apr_stage stage, uint32_t layer) {
  const StageInfo* s = apr_sdk::stage_info(stage);
  if (!s) return false;
  switch (s->scope) {
    case StageScope::kWholeModel:
      return layer == APR_LAYER_NONE;
    case StageScope::kFirstLayer:
      return layer == 0;
    case StageScope::kEveryLayer:
      return layer != APR_LAYER_NONE;
  }
  return false;
}

uint64_t forward_rank(uint32_t layer, apr_stage stage) {
  // APR_LAYER_NONE is the largest u32, so whole-model stages sort after every layer.
  return (uint64_t(layer) << 32) | apr_sdk::forward_position(stage);
}

std::vector<uint64_t> expected_shape(apr_stage stage, const ModelConfig& c, uint32_t n_tokens) {
  const StageInfo& s = info(stage);
  if (!c.has_stage(stage)) return {};
  const uint64_t rows = n_tokens;
  switch (s.shape) {
    case StageShape::kRowsHidden:
      return {rows, c.n_embd};
    case StageShape::kRowsQkv:
      return {rows, c.qkv_dim()};
    case StageShape::kRowsQ:
      return {rows, c.q_dim()};
    case StageShape::kRowsKv:
      return {rows, c.kv_dim()};
    case StageShape::kHeadsRowsNkv:
      return {c.n_head, rows, rows};  // one batch from an empty cache: n_kv is the rows
    case StageShape::kRowsFfn:
      return {rows, c.n_ff};
    case StageShape::kVocab:
      return {c.n_vocab};
  }
  throw Error("trace stage " + std::string(s.name) + " has an unknown shape kind");
}

}  // namespace apr::trace
