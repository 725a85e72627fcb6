// SPDX-License-Identifier: MIT
#include "quant/types.hpp"

#include <array>
#include <limits>

#include "common/error.hpp"

namespace apr::quant {
namespace {

// Indexed by id; block_size 0 marks ids ggml has removed.
constexpr std::array<TypeInfo, kTypeCount> kTable = {{
    {0, "F32", 1, 4, true},          {1, "F16", 1, 2, true},
    {2, "Q4_0", 32, 18, true},       {3, "Q4_1", 32, 20, true},
    {4, "Q4_2", 0, 0, false},        {5, "Q4_3", 0, 0, false},
    {6, "Q5_0", 32, 22, true},       {7, "Q5_1", 32, 24, true},
    {8, "Q8_0", 32, 34, true},       {9, "Q8_1", 32, 36, false},
    {10, "Q2_K", 256, 84, true},     {11, "Q3_K", 256, 110, true},
    {12, "Q4_K", 256, 144, true},    {13, "Q5_K", 256, 176, true},
    {14, "Q6_K", 256, 210, true},    {15, "Q8_K", 256, 292, false},
    {16, "IQ2_XXS", 256, 66, false}, {17, "IQ2_XS", 256, 74, false},
    {18, "IQ3_XXS", 256, 98, false}, {19, "IQ1_S", 256, 50, false},
    {20, "IQ4_NL", 32, 18, false},   {21, "IQ3_S", 256, 110, false},
    {22, "IQ2_S", 256, 82, false},   {23, "IQ4_XS", 256, 136, false},
    {24, "I8", 1, 1, false},         {25, "I16", 1, 2, false},
    {26, "I32", 1, 4, false},        {27, "I64", 1, 8, false},
    {28, "F64", 1, 8, false},        {29, "IQ1_M", 256, 56, false},
    {30, "BF16", 1, 2, true},        {31, "Q4_0_4_4", 0, 0, false},
    {32, "Q4_0_4_8", 0, 0, false},   {33, "Q4_0_8_8", 0, 0, false},
    {34, "TQ1_0", 256, 54, false},   {35, "TQ2_0", 256, 66, false},
    {36, "IQ4_NL_4_4", 0, 0, false}, {37, "IQ4_NL_4_8", 0, 0, false},
    {38, "IQ4_NL_8_8", 0, 0, false}, {39, "MXFP4", 32, 17, false},
    {40, "NVFP4", 64, 36, false},    {41, "Q1_0", 128, 18, false},
    {42, "Q2_0", 64, 18, false},
}};

}  // namespace

const TypeInfo* type_info(uint32_t type) {
  if (type >= kTypeCount || kTable[type].block_size == 0) return nullptr;
  return &kTable[type];
}

std::string type_name(uint32_t type) {
  const TypeInfo* info = type_info(type);
  return info ? std::string(info->name) : "type " + std::to_string(type);
}

bool is_supported(uint32_t type) {
  const TypeInfo* info = type_info(type);
  return info && info->supported;
}

uint64_t row_bytes(uint32_t type, uint64_t n_cols) {
  const TypeInfo* info = type_info(type);
  if (!info) throw Error("unknown ggml tensor type " + std::to_string(type));
  if (n_cols % info->block_size != 0) {
    throw Error("row of " + std::to_string(n_cols) + " elements is not a whole number of " +
                info->name + " blocks of " + std::to_string(info->block_size));
  }
  const uint64_t blocks = n_cols / info->block_size;
  if (blocks > std::numeric_limits<uint64_t>::max() / info->type_size) {
    throw Error("row of " + std::to_string(n_cols) + " " + info->name + " elements overflows");
  }
  return blocks * info->type_size;
}

}  // namespace apr::quant
