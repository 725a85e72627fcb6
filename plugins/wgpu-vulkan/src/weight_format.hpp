// SPDX-License-Identifier: MIT
// Block geometry of the weight types the shaders decode (GGUF-FACTS.md section 2.1).
#pragma once

#include <cstdint>

#include "apr/plugin.h"

namespace apr_vk {

struct WeightFormat {
  const char* name;
  uint32_t block_elems;
  uint32_t block_bytes;
};

// nullptr for a type this plugin cannot decode.
inline const WeightFormat* weight_format(apr_type type) {
  static const WeightFormat f32{"F32", 1, 4}, f16{"F16", 1, 2}, bf16{"BF16", 1, 2},
      q4_0{"Q4_0", 32, 18}, q4_1{"Q4_1", 32, 20}, q5_0{"Q5_0", 32, 22}, q5_1{"Q5_1", 32, 24},
      q8_0{"Q8_0", 32, 34}, q2_k{"Q2_K", 256, 84}, q3_k{"Q3_K", 256, 110}, q4_k{"Q4_K", 256, 144},
      q5_k{"Q5_K", 256, 176}, q6_k{"Q6_K", 256, 210};
  switch (type) {
    case APR_TYPE_F32:
      return &f32;
    case APR_TYPE_F16:
      return &f16;
    case APR_TYPE_BF16:
      return &bf16;
    case APR_TYPE_Q4_0:
      return &q4_0;
    case APR_TYPE_Q4_1:
      return &q4_1;
    case APR_TYPE_Q5_0:
      return &q5_0;
    case APR_TYPE_Q5_1:
      return &q5_1;
    case APR_TYPE_Q8_0:
      return &q8_0;
    case APR_TYPE_Q2_K:
      return &q2_k;
    case APR_TYPE_Q3_K:
      return &q3_k;
    case APR_TYPE_Q4_K:
      return &q4_k;
    case APR_TYPE_Q5_K:
      return &q5_k;
    case APR_TYPE_Q6_K:
      return &q6_k;
    default:
      return nullptr;
  }
}

}  // namespace apr_vk
