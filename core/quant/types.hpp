// SPDX-License-Identifier: MIT
// The ggml type table: ids, names and block geometry for every id a GGUF file may carry, as
// apr_sdk::kWeightTypes (apr/kit/names.hpp) spells them, and which of them apr decodes.
#pragma once

#include <cstdint>
#include <string>

namespace apr::quant {

// ggml type ids that apr decodes.
enum TypeId : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
};

// One past the largest ggml type id known (GGML_TYPE_COUNT).
inline constexpr uint32_t kTypeCount = 43;

struct TypeInfo {
  uint32_t id;
  const char* name;
  uint32_t block_size;  // elements per block
  uint32_t type_size;   // bytes per block
  bool supported;       // dequantize_row handles it
};

// nullptr for ids >= kTypeCount and for the removed ids (4, 5, 31-33, 36-38).
const TypeInfo* type_info(uint32_t type);

// "Q4_K", or "type 99" for an id without an entry.
std::string type_name(uint32_t type);

bool is_supported(uint32_t type);

// The supported types, space-separated: "F32 F16 BF16 Q4_0 ... Q6_K".
std::string supported_type_names();

// Bytes of one row of n_cols elements. Throws apr::Error for an unknown type, for n_cols that is
// not a whole number of blocks, and for a size that does not fit in 64 bits.
uint64_t row_bytes(uint32_t type, uint64_t n_cols);

}  // namespace apr::quant
