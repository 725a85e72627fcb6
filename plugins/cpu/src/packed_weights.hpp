// SPDX-License-Identifier: MIT
// Weights repacked at load for the integer (8-bit activation) kernels: 16 consecutive rows are
// interleaved so that one 512-bit register holds the same 4 elements of all 16 rows, and a VNNI
// instruction (vpdpbusd) multiplies them by 4 activation bytes broadcast to every lane. The 16
// outputs come out in one register, with no horizontal sums, and each activation load and each
// block scale conversion serves 16 rows instead of one.
//
// Layout of one group of 16 rows (all blocks b = 0 .. nb-1 of one region before the next region,
// so the 64-byte loads of the quants stay aligned):
//   quants  nb x kQuantBytes  lane r of the 64 bytes at (b, k) holds row r's quants of block b
//                             for k = 0..3: Q4/Q5 nibble bytes 4k..4k+3 (low nibbles: elements
//                             4k..4k+3, high nibbles: 16+4k..16+4k+3);
//                             for k = 0..7: Q8_0 bytes 4k..4k+3, stored as q + 128 (unsigned)
//   high    nb x 64           Q5 only: lane r = row r's 32 fifth bits, rearranged so that bit g
//                             of byte e is the bit of element 4g + e
//   d       nb x 32           the 16 rows' f16 block scales
//   m       nb x 32           Q4_1/Q5_1 only: the 16 rows' f16 block minimums
// Q4_K and Q5_K, per super-block s of 256 elements (regions in this order, each nsb times):
//   quants  4 x 8 x 64        for sub-block pair c = 0..3 and k = 0..7: lane r holds row r's
//                             bytes qs[32c + 4k .. 32c + 4k + 3] (low nibbles: sub-block 2c,
//                             elements 4k..4k+3; high nibbles: sub-block 2c + 1, the same)
//   high    4 x 2 x 64        Q5_K only: per pair c and half (sub-block 2c + half), lane r = the
//                             32 fifth bits of that sub-block, regrouped as for Q5_0
//   scales  8 x 16            the 16 rows' 6-bit sub-block scales, one byte each
//   mins    8 x 16            the same for the minimums
//   d, dmin 32 + 32           the 16 rows' f16 super-block scales
// Q6_K, per super-block (nsb times each):
//   quants  4 x 8 x 64        for pair p = 2h + u and k = 0..7: lane r holds row r's bytes
//                             ql[64h + 32u + 4k ..] (low nibbles: chunk t = u of half h, i.e.
//                             elements 128h + 32u + 4k..; high nibbles: chunk t = u + 2)
//   high    4 x 4 x 64        per pair, for chunk u then u + 2, the bit planes of value 16 and 32
//                             of the chunk's 32 elements, regrouped as for Q5_0
//   scales  16 x 16           the 16 rows' int8 scales of each 16-element sub-block
//   d       32                the 16 rows' f16 super-block scales
// Q2_K and Q3_K, per super-block (nsb times each):
//   quants  2 x 8 x 64        for half h and k = 0..7: lane r holds row r's bytes
//                             qs[32h + 4k ..]; bits 2j..2j+1 of byte L belong to chunk (h, j) =
//                             elements 128h + 32j + L
//   high    8 x 64            Q3_K only: per chunk c = 4h + j, its 32 high bits (hmask bit c),
//                             regrouped as for Q5_0
//   scales  16 x 16           the 16 rows' sub-block scales: Q2_K the original bytes (scale in
//                             the low nibble, minimum in the high one), Q3_K the 6-bit scale - 32
//   d       32                the 16 rows' f16 super-block scales
//   dmin    32                Q2_K only
// The legacy types' groups are as large as their 16 rows were, the K types' 1-3 % larger (scales
// in bytes); every group is rounded up to 64 bytes. Rows past the last full group are not packed.
#pragma once

#include <apr/plugin.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "thread_pool.hpp"

namespace apr_cpu {

constexpr uint64_t kPackRows = 16;

// The types the packed kernels handle.
bool packable(apr_type type);

struct PackedWeight {
  struct FreeAligned {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, FreeAligned> data;
  uint64_t n_groups = 0;     // full groups of kPackRows rows
  uint64_t group_bytes = 0;  // kPackRows * row bytes, rounded up to 64

  const uint8_t* group(uint64_t g) const { return data.get() + g * group_bytes; }
};

// Packs the full groups of n_rows rows of row_bytes each (n_cols / 32 blocks of `type`), groups
// in parallel on pool. Returns an empty PackedWeight when fewer than kPackRows rows exist.
PackedWeight pack_weight(apr_type type, const uint8_t* rows, uint64_t n_rows, uint64_t n_cols,
                         uint64_t row_bytes, ThreadPool& pool);

}  // namespace apr_cpu
