// SPDX-License-Identifier: MIT
// How the tensors of one stage, emitted once per micro-batch of a split prompt, join into the
// tensor an unsplit batch would have emitted: rows x cols stages row after row; heads x rows x
// keys stages (attention scores) row after row, each earlier row's keys past its own end 0 as
// unsplit (every later micro-batch sees more keys); a 1-D stage (lm_head, one row) keeps the
// last part, since the last micro-batch's last row is the prompt's.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace apr::trace {

// Appends `part` to (`shape`, `data`); an empty shape takes the part as it is. Returns false,
// changing nothing, when the part cannot follow (different rank, widths or heads, fewer keys).
bool join_micro_batch(std::vector<uint64_t>& shape, std::vector<float>& data,
                      const std::vector<uint64_t>& part_shape, std::span<const float> part);

}  // namespace apr::trace
