// SPDX-License-Identifier: MIT
#include "spirv_table.hpp"

#include <cstdint>

#include "spv_add.h"
#include "spv_attention.h"
#include "spv_embed_bf16.h"
#include "spv_embed_f16.h"
#include "spv_embed_f32.h"
#include "spv_embed_q2_k.h"
#include "spv_embed_q3_k.h"
#include "spv_embed_q4_0.h"
#include "spv_embed_q4_1.h"
#include "spv_embed_q4_k.h"
#include "spv_embed_q5_0.h"
#include "spv_embed_q5_1.h"
#include "spv_embed_q5_k.h"
#include "spv_embed_q6_k.h"
#include "spv_embed_q8_0.h"
#include "spv_matmul_bf16.h"
#include "spv_matmul_f16.h"
#include "spv_matmul_f32.h"
#include "spv_matmul_q2_k.h"
#include "spv_matmul_q3_k.h"
#include "spv_matmul_q4_0.h"
#include "spv_matmul_q4_1.h"
#include "spv_matmul_q4_k.h"
#include "spv_matmul_q5_0.h"
#include "spv_matmul_q5_1.h"
#include "spv_matmul_q5_k.h"
#include "spv_matmul_q6_k.h"
#include "spv_matmul_q8_0.h"
#include "spv_rms_norm.h"
#include "spv_rope.h"
#include "spv_swiglu.h"
#include "spv_unary.h"

namespace apr_vk {
namespace {

template <size_t N>
SpirvCode code(const uint32_t (&words)[N]) {
  return SpirvCode{words, sizeof(words)};
}

#define APR_VK_WEIGHT_KERNEL(kernel)    \
  switch (weight_type) {                \
    case APR_TYPE_F32:                  \
      return code(spv_##kernel##_f32);  \
    case APR_TYPE_F16:                  \
      return code(spv_##kernel##_f16);  \
    case APR_TYPE_BF16:                 \
      return code(spv_##kernel##_bf16); \
    case APR_TYPE_Q4_0:                 \
      return code(spv_##kernel##_q4_0); \
    case APR_TYPE_Q4_1:                 \
      return code(spv_##kernel##_q4_1); \
    case APR_TYPE_Q5_0:                 \
      return code(spv_##kernel##_q5_0); \
    case APR_TYPE_Q5_1:                 \
      return code(spv_##kernel##_q5_1); \
    case APR_TYPE_Q8_0:                 \
      return code(spv_##kernel##_q8_0); \
    case APR_TYPE_Q2_K:                 \
      return code(spv_##kernel##_q2_k); \
    case APR_TYPE_Q3_K:                 \
      return code(spv_##kernel##_q3_k); \
    case APR_TYPE_Q4_K:                 \
      return code(spv_##kernel##_q4_k); \
    case APR_TYPE_Q5_K:                 \
      return code(spv_##kernel##_q5_k); \
    case APR_TYPE_Q6_K:                 \
      return code(spv_##kernel##_q6_k); \
    default:                            \
      return {};                        \
  }

}  // namespace

SpirvCode spirv_code(Kernel kernel, apr_type weight_type) {
  switch (kernel) {
    case Kernel::kMatmul:
      APR_VK_WEIGHT_KERNEL(matmul)
    case Kernel::kEmbed:
      APR_VK_WEIGHT_KERNEL(embed)
    case Kernel::kRmsNorm:
      return code(spv_rms_norm);
    case Kernel::kAdd:
      return code(spv_add);
    case Kernel::kRope:
      return code(spv_rope);
    case Kernel::kSwiglu:
      return code(spv_swiglu);
    case Kernel::kAttention:
      return code(spv_attention);
    case Kernel::kUnary:
      return code(spv_unary);
  }
  return {};
}

#undef APR_VK_WEIGHT_KERNEL

bool decodes_weight_type(apr_type type) {
  return spirv_code(Kernel::kMatmul, type).words && spirv_code(Kernel::kEmbed, type).words;
}

}  // namespace apr_vk
