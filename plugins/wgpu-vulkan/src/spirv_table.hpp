// SPDX-License-Identifier: MIT
// The embedded SPIR-V of every kernel.
#pragma once

#include <cstddef>
#include <cstdint>

#include "apr/plugin.h"

namespace apr_vk {

enum class Kernel { kMatmul, kEmbed, kRmsNorm, kAdd, kRope, kSwiglu, kAttention, kUnary };

struct SpirvCode {
  const uint32_t* words = nullptr;
  size_t size_bytes = 0;
};

// Weight kernels (matmul, embed) take the weight type; the others ignore it. Empty code when
// the pair does not exist.
SpirvCode spirv_code(Kernel kernel, apr_type weight_type);

// Whether this plugin decodes weights of `type`: its matmul and embed were built for it (the
// WTYPE list in CMakeLists.txt).
bool decodes_weight_type(apr_type type);

}  // namespace apr_vk
