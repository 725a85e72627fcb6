// SPDX-License-Identifier: MIT
#include "weight_formats.hpp"

namespace apr_cpu {

namespace {
constexpr WeightFormat kFormats[] = {
    {APR_TYPE_F32, "F32", 1, 4},       {APR_TYPE_F16, "F16", 1, 2},
    {APR_TYPE_BF16, "BF16", 1, 2},     {APR_TYPE_Q4_0, "Q4_0", 32, 18},
    {APR_TYPE_Q4_1, "Q4_1", 32, 20},   {APR_TYPE_Q5_0, "Q5_0", 32, 22},
    {APR_TYPE_Q5_1, "Q5_1", 32, 24},   {APR_TYPE_Q8_0, "Q8_0", 32, 34},
    {APR_TYPE_Q2_K, "Q2_K", 256, 84},  {APR_TYPE_Q3_K, "Q3_K", 256, 110},
    {APR_TYPE_Q4_K, "Q4_K", 256, 144}, {APR_TYPE_Q5_K, "Q5_K", 256, 176},
    {APR_TYPE_Q6_K, "Q6_K", 256, 210},
};

// ggml names of the types this plugin cannot decode, so messages can name them.
const char* other_type_name(apr_type type) {
  switch (type) {
    case 9:
      return "Q8_1";
    case 15:
      return "Q8_K";
    case 16:
      return "IQ2_XXS";
    case 17:
      return "IQ2_XS";
    case 18:
      return "IQ3_XXS";
    case 19:
      return "IQ1_S";
    case 20:
      return "IQ4_NL";
    case 21:
      return "IQ3_S";
    case 22:
      return "IQ2_S";
    case 23:
      return "IQ4_XS";
    case 24:
      return "I8";
    case 25:
      return "I16";
    case 26:
      return "I32";
    case 27:
      return "I64";
    case 28:
      return "F64";
    case 29:
      return "IQ1_M";
    case 34:
      return "TQ1_0";
    case 35:
      return "TQ2_0";
    case 39:
      return "MXFP4";
    default:
      return "unknown";
  }
}
}  // namespace

const WeightFormat* find_weight_format(apr_type type) {
  for (const WeightFormat& f : kFormats)
    if (f.type == type) return &f;
  return nullptr;
}

const char* weight_type_name(apr_type type) {
  const WeightFormat* f = find_weight_format(type);
  return f ? f->name : other_type_name(type);
}

}  // namespace apr_cpu
