// SPDX-License-Identifier: MIT
// A self-contained HTML page (inline CSS, no scripts or external resources) with a heat map of
// cosine similarity per layer and stage, coloured by the verdict rule (cosine and NMSE), every
// metric in each cell's tooltip and the first divergence's metrics spelled out, for
// `apr bisect --report`.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "trace_compare/trace_compare.hpp"

namespace apr::trace {

// `facts` are shown as a key/value list above the map (model, backends, prompt).
std::string comparison_html(const TraceComparison& c, const std::string& title,
                            const std::vector<std::pair<std::string, std::string>>& facts);

}  // namespace apr::trace
