// SPDX-License-Identifier: MIT
// Writes 2-D float32 arrays in NumPy's .npy format (version 1.0), for `apr run --dump-logits`.
#pragma once

#include <string>
#include <vector>

namespace apr::cli {

// Throws apr::Error if the file cannot be written completely.
void write_npy_f32(const std::string& path, const std::vector<std::vector<float>>& rows);

}  // namespace apr::cli
