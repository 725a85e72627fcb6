// SPDX-License-Identifier: MIT
// Which stages of which layers a trace saves, as given by --save-tensor and
// --save-tensor-layers.
#pragma once

#include <apr/plugin.h>

#include <bitset>
#include <cstdint>
#include <string_view>

#include "trace_format/stages.hpp"

namespace apr::trace {

struct LayerRange {
  uint32_t begin = 0;  // inclusive
  uint32_t end = 1;    // exclusive
  bool contains(uint32_t layer) const { return layer >= begin && layer < end; }
};

class TracePlan {
 public:
  TracePlan() = default;
  TracePlan(std::bitset<kStageCount> stages, LayerRange layers)
      : stages_(stages), layers_(layers) {}

  // Every stage of every layer below n_layers.
  static TracePlan everything(uint32_t n_layers);

  // Whole-model stages (APR_LAYER_NONE) follow only the stage set; the others also the range.
  bool wants(apr_stage stage, uint32_t layer) const;
  bool wants_stage(apr_stage stage) const { return stage < kStageCount && stages_.test(stage); }
  const std::bitset<kStageCount>& stages() const { return stages_; }
  const LayerRange& layers() const { return layers_; }

 private:
  std::bitset<kStageCount> stages_;
  LayerRange layers_;
};

// "attn_norm,FFN_OUT" or "all"; case-insensitive. Throws apr::Error on an empty item or an
// unknown name (listing the valid ones).
std::bitset<kStageCount> parse_stage_list(std::string_view text);

// "START..END" with END exclusive. Throws apr::Error on non-numbers or END <= START.
LayerRange parse_layer_range(std::string_view text);

}  // namespace apr::trace
