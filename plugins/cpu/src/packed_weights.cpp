// SPDX-License-Identifier: MIT
#include "packed_weights.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>

#include "weight_formats.hpp"

namespace apr_cpu {

namespace {

struct Geometry {
  uint32_t block_bytes;
  uint32_t d_offset;      // f16 scale within the original block
  int32_t m_offset;       // f16 minimum, or -1
  int32_t high_offset;    // 32 fifth bits, or -1
  uint32_t quant_offset;  // nibbles or int8 values
  bool nibbles;
};

bool geometry(apr_type type, Geometry& g) {
  switch (type) {
    case APR_TYPE_Q4_0:
      g = {18, 0, -1, -1, 2, true};
      return true;
    case APR_TYPE_Q4_1:
      g = {20, 0, 2, -1, 4, true};
      return true;
    case APR_TYPE_Q5_0:
      g = {22, 0, -1, 2, 6, true};
      return true;
    case APR_TYPE_Q5_1:
      g = {24, 0, 2, 4, 8, true};
      return true;
    case APR_TYPE_Q8_0:
      g = {34, 0, -1, -1, 2, false};
      return true;
    default:
      return false;
  }
}

// Bit g of byte e of the result = bit 4g + e of bits: the fifth bits of the four elements of group
// g sit in bit g of four consecutive bytes, ready for one shift and mask per group. Bit t of input
// byte B (element 8B + t) goes to bit 8 (t % 4) + t / 4 + 2B, so one table of the byte values,
// shifted by 2B, does it.
struct RegroupTable {
  uint32_t of_byte[256];
  constexpr RegroupTable() : of_byte() {
    for (uint32_t v = 0; v < 256; ++v)
      for (uint32_t t = 0; t < 8; ++t)
        if ((v >> t) & 1u) of_byte[v] |= 1u << (8 * (t % 4) + t / 4);
  }
};
constexpr RegroupTable kRegroup;

uint32_t regroup_high_bits(uint32_t bits) {
  return kRegroup.of_byte[bits & 0xFF] | kRegroup.of_byte[(bits >> 8) & 0xFF] << 2 |
         kRegroup.of_byte[(bits >> 16) & 0xFF] << 4 | kRegroup.of_byte[bits >> 24] << 6;
}

// The 16 rows of one group of a 32-element block type (layout in packed_weights.hpp).
void pack_legacy_group(const Geometry& geo, const uint8_t* rows, uint64_t row_bytes, uint64_t nb,
                       uint8_t* out) {
  const uint64_t quant_bytes = geo.nibbles ? 256 : 512;
  uint8_t* quants = out;
  uint8_t* high = quants + nb * quant_bytes;
  uint8_t* d = high + (geo.high_offset >= 0 ? nb * 64 : 0);
  uint8_t* m = d + nb * 32;
  for (uint64_t r = 0; r < kPackRows; ++r) {
    const uint8_t* row = rows + r * row_bytes;
    for (uint64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * geo.block_bytes;
      std::memcpy(d + b * 32 + 2 * r, blk + geo.d_offset, 2);
      if (geo.m_offset >= 0) std::memcpy(m + b * 32 + 2 * r, blk + geo.m_offset, 2);
      if (geo.high_offset >= 0) {
        uint32_t bits;
        std::memcpy(&bits, blk + geo.high_offset, 4);
        bits = regroup_high_bits(bits);
        std::memcpy(high + b * 64 + 4 * r, &bits, 4);
      }
      const uint8_t* q = blk + geo.quant_offset;
      uint8_t* dst = quants + b * quant_bytes + 4 * r;
      for (uint64_t k = 0; k < quant_bytes / 64; ++k)
        for (int e = 0; e < 4; ++e)
          dst[64 * k + e] = geo.nibbles ? q[4 * k + e] : static_cast<uint8_t>(q[4 * k + e] ^ 0x80);
    }
  }
}

// Q4_K / Q5_K (packed_weights.hpp): per super-block of 256, 4 pairs of 32-element sub-blocks.
constexpr uint64_t kK4Quants = 4 * 8 * 64, kK4High = 4 * 2 * 64, kK4Scales = 8 * 16;

uint64_t k4_group_bytes(bool high, uint64_t nsb) {
  return nsb * (kK4Quants + (high ? kK4High : 0) + 2 * kK4Scales + 2 * 32);
}

void pack_k4_group(bool high, const uint8_t* rows, uint64_t row_bytes, uint64_t nsb, uint8_t* out) {
  uint8_t* quants = out;
  uint8_t* highs = quants + nsb * kK4Quants;
  uint8_t* scales = highs + (high ? nsb * kK4High : 0);
  uint8_t* mins = scales + nsb * kK4Scales;
  uint8_t* d = mins + nsb * kK4Scales;
  uint8_t* dmin = d + nsb * 32;
  const uint32_t block_bytes = high ? 176 : 144;
  for (uint64_t r = 0; r < kPackRows; ++r)
    for (uint64_t s = 0; s < nsb; ++s) {
      const uint8_t* blk = rows + r * row_bytes + s * block_bytes;
      std::memcpy(d + s * 32 + 2 * r, blk, 2);
      std::memcpy(dmin + s * 32 + 2 * r, blk + 2, 2);
      for (int j = 0; j < 8; ++j) {
        int sc, m;
        k4_scale_min(j, blk + 4, sc, m);
        scales[s * kK4Scales + 16 * j + r] = static_cast<uint8_t>(sc);
        mins[s * kK4Scales + 16 * j + r] = static_cast<uint8_t>(m);
      }
      const uint8_t* qh = blk + 16;
      const uint8_t* qs = blk + (high ? 48 : 16);
      for (int c = 0; c < 4; ++c) {
        for (int k = 0; k < 8; ++k)
          std::memcpy(quants + s * kK4Quants + (8 * c + k) * 64 + 4 * r, qs + 32 * c + 4 * k, 4);
        if (!high) continue;
        for (int half = 0; half < 2; ++half) {
          uint32_t bits = 0;
          for (uint32_t l = 0; l < 32; ++l) bits |= ((qh[l] >> (2 * c + half)) & 1u) << l;
          bits = regroup_high_bits(bits);
          std::memcpy(highs + s * kK4High + (2 * c + half) * 64 + 4 * r, &bits, 4);
        }
      }
    }
}

// Q6_K (packed_weights.hpp): per super-block, 4 nibble-byte pairs of 32-element chunks.
constexpr uint64_t kK6Quants = 4 * 8 * 64, kK6High = 4 * 4 * 64, kK6Scales = 16 * 16;

uint64_t k6_group_bytes(uint64_t nsb) {
  return nsb * (kK6Quants + kK6High + kK6Scales + 32);
}

void pack_k6_group(const uint8_t* rows, uint64_t row_bytes, uint64_t nsb, uint8_t* out) {
  uint8_t* quants = out;
  uint8_t* highs = quants + nsb * kK6Quants;
  uint8_t* scales = highs + nsb * kK6High;
  uint8_t* d = scales + nsb * kK6Scales;
  for (uint64_t r = 0; r < kPackRows; ++r)
    for (uint64_t s = 0; s < nsb; ++s) {
      const uint8_t* blk = rows + r * row_bytes + s * 210;
      const uint8_t* ql = blk;
      const uint8_t* qh = blk + 128;
      std::memcpy(d + s * 32 + 2 * r, blk + 208, 2);
      for (int j = 0; j < 16; ++j) scales[s * kK6Scales + 16 * j + r] = blk[192 + j];
      // Pair p = 2h + u: bytes ql[64h + 32u ..], low nibbles chunk t = u, high nibbles t = u + 2.
      for (int p = 0; p < 4; ++p) {
        const int h = p / 2, u = p % 2;
        for (int k = 0; k < 8; ++k)
          std::memcpy(quants + s * kK6Quants + (8 * p + k) * 64 + 4 * r,
                      ql + 64 * h + 32 * u + 4 * k, 4);
        for (int part = 0; part < 2; ++part)
          for (int plane = 0; plane < 2; ++plane) {
            const int t = u + 2 * part;
            uint32_t bits = 0;
            for (uint32_t l = 0; l < 32; ++l)
              bits |= ((qh[32 * h + l] >> (2 * t + plane)) & 1u) << l;
            bits = regroup_high_bits(bits);
            std::memcpy(highs + s * kK6High + (4 * p + 2 * part + plane) * 64 + 4 * r, &bits, 4);
          }
      }
    }
}

// Q2_K / Q3_K (packed_weights.hpp): per super-block, the 2-bit quant bytes of each half.
constexpr uint64_t kK2Quants = 2 * 8 * 64, kK3High = 8 * 64, kK2Scales = 16 * 16;

uint64_t k2_group_bytes(bool q3, uint64_t nsb) {
  return nsb * (kK2Quants + (q3 ? kK3High : 0) + kK2Scales + (q3 ? 32 : 64));
}

// Q3_K sub-block j's 6-bit scale, minus 32 (ggml's packing of 16 scales into 12 bytes).
int q3k_scale(const uint8_t* S, int j) {
  const int low4 = j < 8 ? (S[j] & 15) : (S[j - 8] >> 4);
  const int high2 = (S[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low4 | (high2 << 4)) - 32;
}

void pack_k2_group(bool q3, const uint8_t* rows, uint64_t row_bytes, uint64_t nsb, uint8_t* out) {
  uint8_t* quants = out;
  uint8_t* highs = quants + nsb * kK2Quants;
  uint8_t* scales = highs + (q3 ? nsb * kK3High : 0);
  uint8_t* d = scales + nsb * kK2Scales;
  uint8_t* dmin = d + nsb * 32;
  for (uint64_t r = 0; r < kPackRows; ++r)
    for (uint64_t s = 0; s < nsb; ++s) {
      const uint8_t* blk = rows + r * row_bytes + s * (q3 ? 110 : 84);
      const uint8_t* qs = blk + (q3 ? 32 : 16);
      if (q3) {
        std::memcpy(d + s * 32 + 2 * r, blk + 108, 2);
        for (int j = 0; j < 16; ++j)
          scales[s * kK2Scales + 16 * j + r] = static_cast<uint8_t>(q3k_scale(blk + 96, j));
        // Chunk (h, j) = elements 128h + 32j + L: the high bit is bit 4h + j of hmask[L].
        for (int c = 0; c < 8; ++c) {
          uint32_t bits = 0;
          for (uint32_t l = 0; l < 32; ++l) bits |= ((blk[l] >> c) & 1u) << l;
          bits = regroup_high_bits(bits);
          std::memcpy(highs + s * kK3High + c * 64 + 4 * r, &bits, 4);
        }
      } else {
        std::memcpy(d + s * 32 + 2 * r, blk + 80, 2);
        std::memcpy(dmin + s * 32 + 2 * r, blk + 82, 2);
        for (int j = 0; j < 16; ++j) scales[s * kK2Scales + 16 * j + r] = blk[j];
      }
      for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 8; ++k)
          std::memcpy(quants + s * kK2Quants + (8 * h + k) * 64 + 4 * r, qs + 32 * h + 4 * k, 4);
    }
}

}  // namespace

bool packable(apr_type type) {
  Geometry g;
  return geometry(type, g) || type == APR_TYPE_Q2_K || type == APR_TYPE_Q3_K ||
         type == APR_TYPE_Q4_K || type == APR_TYPE_Q5_K || type == APR_TYPE_Q6_K;
}

void PackedWeight::FreeAligned::operator()(uint8_t* p) const {
  std::free(p);
}

PackedWeight pack_weight(apr_type type, const uint8_t* rows, uint64_t n_rows, uint64_t n_cols,
                         uint64_t row_bytes, ThreadPool& pool) {
  PackedWeight packed;
  if (!packable(type) || n_rows < kPackRows) return packed;
  const uint64_t nb = n_cols / 32, nsb = n_cols / 256;
  Geometry geo{};
  uint64_t bytes = kPackRows * row_bytes;
  std::function<void(const uint8_t*, uint8_t*)> pack_group;
  switch (type) {
    case APR_TYPE_Q4_K:
    case APR_TYPE_Q5_K: {
      const bool high = type == APR_TYPE_Q5_K;
      bytes = k4_group_bytes(high, nsb);
      pack_group = [=](const uint8_t* in, uint8_t* out) {
        pack_k4_group(high, in, row_bytes, nsb, out);
      };
      break;
    }
    case APR_TYPE_Q2_K:
    case APR_TYPE_Q3_K: {
      const bool q3 = type == APR_TYPE_Q3_K;
      bytes = k2_group_bytes(q3, nsb);
      pack_group = [=](const uint8_t* in, uint8_t* out) {
        pack_k2_group(q3, in, row_bytes, nsb, out);
      };
      break;
    }
    case APR_TYPE_Q6_K:
      bytes = k6_group_bytes(nsb);
      pack_group = [=](const uint8_t* in, uint8_t* out) { pack_k6_group(in, row_bytes, nsb, out); };
      break;
    default:
      geometry(type, geo);
      pack_group = [=](const uint8_t* in, uint8_t* out) {
        pack_legacy_group(geo, in, row_bytes, nb, out);
      };
      break;
  }
  packed.n_groups = n_rows / kPackRows;
  packed.group_bytes = (bytes + 63) / 64 * 64;  // every group 64-byte aligned
  // 64-byte alignment for the quants' 512-bit loads (a load across two cache lines costs two).
  void* mem = std::aligned_alloc(64, packed.n_groups * packed.group_bytes);
  if (!mem) throw std::bad_alloc();
  packed.data.reset(static_cast<uint8_t*>(mem));
  // Groups are independent; 64 per task keeps the pool's overhead small on large matrices.
  constexpr uint64_t kGroupsPerTask = 64;
  pool.run((packed.n_groups + kGroupsPerTask - 1) / kGroupsPerTask, [&](size_t task) {
    const uint64_t g1 = std::min(packed.n_groups, (task + 1) * kGroupsPerTask);
    for (uint64_t g = task * kGroupsPerTask; g < g1; ++g)
      pack_group(rows + g * kPackRows * row_bytes, packed.data.get() + g * packed.group_bytes);
  });
  return packed;
}

}  // namespace apr_cpu
