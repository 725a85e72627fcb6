// SPDX-License-Identifier: MIT
#include "quant/types.hpp"

#include <apr/kit/names.hpp>

#include <array>
#include <limits>

#include "common/error.hpp"

namespace apr::quant {
namespace {

static_assert(kTypeCount == apr_sdk::kWeightTypes.size());

// apr's ids are the ABI's.
static_assert(kF32 == APR_TYPE_F32 && kF16 == APR_TYPE_F16 && kBF16 == APR_TYPE_BF16 &&
              kQ4_0 == APR_TYPE_Q4_0 && kQ4_1 == APR_TYPE_Q4_1 && kQ5_0 == APR_TYPE_Q5_0 &&
              kQ5_1 == APR_TYPE_Q5_1 && kQ8_0 == APR_TYPE_Q8_0 && kQ2_K == APR_TYPE_Q2_K &&
              kQ3_K == APR_TYPE_Q3_K && kQ4_K == APR_TYPE_Q4_K && kQ5_K == APR_TYPE_Q5_K &&
              kQ6_K == APR_TYPE_Q6_K);

// apr_sdk::kWeightTypes with what apr decodes: exactly the types the ABI names
// (dequantize_row has a decoder for each).
constexpr std::array<TypeInfo, kTypeCount> make_table() {
  std::array<TypeInfo, kTypeCount> table{};
  for (uint32_t id = 0; id < kTypeCount; ++id) {
    const apr_sdk::WeightType& w = apr_sdk::kWeightTypes[id];
    // The names are string literals, so data() ends in a NUL.
    table[id] = {w.id, w.name.data(), w.block_elems, w.block_bytes,
                 apr_sdk::is_abi_weight_type(w.id)};
  }
  return table;
}

// Indexed by id; block_size 0 marks ids ggml has removed.
constexpr std::array<TypeInfo, kTypeCount> kTable = make_table();

constexpr bool table_indexed_by_id() {
  for (uint32_t id = 0; id < kTypeCount; ++id)
    if (kTable[id].id != id) return false;
  return true;
}
static_assert(table_indexed_by_id());

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

std::string supported_type_names() {
  std::string out;
  for (apr_type t : apr_sdk::kAbiWeightTypes) {
    if (!out.empty()) out += ' ';
    out += apr_sdk::weight_type_name(t);
  }
  return out;
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
