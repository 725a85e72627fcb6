// SPDX-License-Identifier: MIT
#include "trace_capture/trace_plan.hpp"

#include <charconv>
#include <string>

#include "common/error.hpp"

namespace apr::trace {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

uint32_t parse_layer_number(std::string_view digits, std::string_view whole) {
  uint32_t value = 0;
  const char* end = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), end, value);
  if (digits.empty() || ec != std::errc() || ptr != end)
    throw Error("--save-tensor-layers '" + std::string(whole) + "': '" + std::string(digits) +
                "' is not a layer number (expected START..END, e.g. 0..4)");
  return value;
}

}  // namespace

TracePlan TracePlan::everything(uint32_t n_layers) {
  std::bitset<kStageCount> all;
  all.set();
  return TracePlan(all, LayerRange{0, n_layers});
}

bool TracePlan::wants(apr_stage stage, uint32_t layer) const {
  if (!wants_stage(stage) || !stage_exists_in_layer(stage, layer)) return false;
  return layer == APR_LAYER_NONE || layers_.contains(layer);
}

std::bitset<kStageCount> parse_stage_list(std::string_view text) {
  std::bitset<kStageCount> stages;
  if (trim(text).empty())
    throw Error("--save-tensor: empty stage list; valid stages: all, " + valid_stage_names());
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string_view item = trim(text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (item.empty())
      throw Error("--save-tensor '" + std::string(text) + "': empty stage name at character " +
                  std::to_string(start + 1));
    if (item.size() == 3 && (item[0] | 0x20) == 'a' && (item[1] | 0x20) == 'l' &&
        (item[2] | 0x20) == 'l') {
      stages.set();
    } else if (auto s = stage_from_name(item)) {
      stages.set(*s);
    } else {
      throw Error("--save-tensor: unknown stage '" + std::string(item) + "'; valid stages: all, " +
                  valid_stage_names());
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return stages;
}

LayerRange parse_layer_range(std::string_view text) {
  const size_t dots = text.find("..");
  if (dots == std::string_view::npos)
    throw Error("--save-tensor-layers '" + std::string(text) +
                "': expected START..END with END exclusive, e.g. 0..4");
  LayerRange r;
  r.begin = parse_layer_number(trim(text.substr(0, dots)), text);
  r.end = parse_layer_number(trim(text.substr(dots + 2)), text);
  if (r.end <= r.begin)
    throw Error("--save-tensor-layers '" + std::string(text) + "': END (" + std::to_string(r.end) +
                ") must be greater than START (" + std::to_string(r.begin) + "); END is exclusive");
  return r;
}

}  // namespace apr::trace
