// SPDX-License-Identifier: MIT
#include "trace_format/stitch.hpp"

#include <algorithm>

namespace apr::trace {

bool join_micro_batch(std::vector<uint64_t>& shape, std::vector<float>& data,
                      const std::vector<uint64_t>& part_shape, std::span<const float> part) {
  if (shape.empty()) {
    shape = part_shape;
    data.assign(part.begin(), part.end());
    return true;
  }
  if (part_shape.size() != shape.size()) return false;
  if (shape.size() == 2) {
    if (part_shape[1] != shape[1]) return false;
    data.insert(data.end(), part.begin(), part.end());
    shape[0] += part_shape[0];
    return true;
  }
  if (shape.size() == 3) {
    const uint64_t heads = shape[0], old_rows = shape[1], old_keys = shape[2];
    const uint64_t rows = part_shape[1], keys = part_shape[2];
    if (part_shape[0] != heads || keys < old_keys) return false;
    std::vector<float> joined(heads * (old_rows + rows) * keys, 0.0f);
    for (uint64_t h = 0; h < heads; ++h) {
      for (uint64_t r = 0; r < old_rows; ++r)
        std::copy_n(&data[(h * old_rows + r) * old_keys], old_keys,
                    &joined[(h * (old_rows + rows) + r) * keys]);
      for (uint64_t r = 0; r < rows; ++r)
        std::copy_n(&part[(h * rows + r) * keys], keys,
                    &joined[(h * (old_rows + rows) + old_rows + r) * keys]);
    }
    data = std::move(joined);
    shape = {heads, old_rows + rows, keys};
    return true;
  }
  shape = part_shape;
  data.assign(part.begin(), part.end());
  return true;
}

}  // namespace apr::trace
