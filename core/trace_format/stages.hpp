// SPDX-License-Identifier: MIT
// The trace stages of the forward pass: their file names, their order, and which of them belong
// to a layer. Names are those of APRT trace directories (aprender's layout), so they never change.
// The one table of them is apr_sdk::kStages (apr/kit/names.hpp), shared with the plugins; these
// functions are the host's view of it.
#pragma once

#include <apr/plugin.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace apr {
struct ModelConfig;
}

namespace apr::trace {

constexpr uint32_t kStageCount = APR_STAGE_COUNT_V1_3;

// The file stem of a stage ("ffn_swigl" for APR_STAGE_FFN_SWIGLU). Throws apr::Error for a value
// outside the known range.
std::string_view stage_name(apr_stage stage);

// Case-insensitive lookup of a stage by its file stem.
std::optional<apr_stage> stage_from_name(std::string_view name);

// All stages in forward order: per-layer stages (embedding first, in layer 0 only), then the
// whole-model ones. The stages ABI 1.3 added sit among them where the forward pass makes them.
const std::array<apr_stage, kStageCount>& stages_in_forward_order();

// "embedding, attn_norm, ..." for error messages.
std::string valid_stage_names();

// final_norm and lm_head have no layer (APR_LAYER_NONE).
bool is_whole_model_stage(apr_stage stage);

// Only layer 0 carries the embedding.
bool stage_exists_in_layer(apr_stage stage, uint32_t layer);

// A rank that orders (layer, stage) pairs the way the forward pass produces them: layer 0's
// stages, layer 1's, ..., then whole-model stages.
uint64_t forward_rank(uint32_t layer, apr_stage stage);

// The shape the forward pass emits for a stage over a prompt of n_tokens in one batch, or an
// empty vector when the model does not have the stage (ModelConfig::has_stage).
std::vector<uint64_t> expected_shape(apr_stage stage, const ModelConfig& config, uint32_t n_tokens);

}  // namespace apr::trace
