// SPDX-License-Identifier: MIT
// The documented preference of `--backend auto` among backends whose probe scores tie: cuda,
// vulkan, cpu. PluginHost::select and select_backend both rank by it.
#pragma once

#include <array>
#include <string_view>

namespace apr::host {

inline constexpr std::array<std::string_view, 3> kAutoBackendOrder = {"cuda", "vulkan", "cpu"};

// The position of `name` in kAutoBackendOrder; a name not listed ranks after all of them.
constexpr int auto_backend_rank(std::string_view name) {
  for (size_t i = 0; i < kAutoBackendOrder.size(); ++i)
    if (kAutoBackendOrder[i] == name) return static_cast<int>(i);
  return static_cast<int>(kAutoBackendOrder.size());
}

}  // namespace apr::host
