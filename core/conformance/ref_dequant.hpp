// SPDX-License-Identifier: MIT
// Independent float64 reference decoder for the ggml tensor types apr supports.
//
// Written element by element from the per-element formulas of the GGUF fact sheet (§2), with no
// block loops and nothing shared with the rest of core/ or with plugins/ (it includes only the
// standard library), so that it can serve as the oracle for the production dequantizers and for
// every backend's kernel tests. Speed is irrelevant here; being obviously right is the point.
//
// It belongs to the conformance suite (`apr plugin-check`, this folder). Tests elsewhere link the
// header-only target apr_ref_dequant and include it as "conformance/ref_dequant.hpp".
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace apr_test {

// ggml type ids of the formats covered here.
inline constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ5_0 = 6, kQ5_1 = 7, kQ8_0 = 8,
                          kQ2_K = 10, kQ3_K = 11, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14, kBF16 = 30;

inline const std::vector<uint32_t>& ref_types() {
  static const std::vector<uint32_t> types = {kF32,  kF16,  kBF16, kQ4_0, kQ4_1, kQ5_0, kQ5_1,
                                              kQ8_0, kQ2_K, kQ3_K, kQ4_K, kQ5_K, kQ6_K};
  return types;
}

inline const char* ref_type_name(uint32_t type) {
  switch (type) {
    case kF32:
      return "F32";
    case kF16:
      return "F16";
    case kBF16:
      return "BF16";
    case kQ4_0:
      return "Q4_0";
    case kQ4_1:
      return "Q4_1";
    case kQ5_0:
      return "Q5_0";
    case kQ5_1:
      return "Q5_1";
    case kQ8_0:
      return "Q8_0";
    case kQ2_K:
      return "Q2_K";
    case kQ3_K:
      return "Q3_K";
    case kQ4_K:
      return "Q4_K";
    case kQ5_K:
      return "Q5_K";
    case kQ6_K:
      return "Q6_K";
  }
  return "unknown";
}

// Elements per block.
inline uint64_t block_size(uint32_t type) {
  switch (type) {
    case kF32:
    case kF16:
    case kBF16:
      return 1;
    case kQ4_0:
    case kQ4_1:
    case kQ5_0:
    case kQ5_1:
    case kQ8_0:
      return 32;
    case kQ2_K:
    case kQ3_K:
    case kQ4_K:
    case kQ5_K:
    case kQ6_K:
      return 256;
  }
  throw std::invalid_argument("ref_dequant: unsupported type " + std::to_string(type));
}

// Bytes per block.
inline uint64_t type_size(uint32_t type) {
  switch (type) {
    case kF32:
      return 4;
    case kF16:
      return 2;
    case kBF16:
      return 2;
    case kQ4_0:
      return 18;
    case kQ4_1:
      return 20;
    case kQ5_0:
      return 22;
    case kQ5_1:
      return 24;
    case kQ8_0:
      return 34;
    case kQ2_K:
      return 84;
    case kQ3_K:
      return 110;
    case kQ4_K:
      return 144;
    case kQ5_K:
      return 176;
    case kQ6_K:
      return 210;
  }
  throw std::invalid_argument("ref_dequant: unsupported type " + std::to_string(type));
}

inline uint16_t ref_u16(const uint8_t* p) {
  return uint16_t(p[0] | (p[1] << 8));
}

inline uint32_t ref_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// IEEE binary16 by its definition: sign, 5-bit biased exponent, 10-bit fraction.
inline double ref_half(uint16_t h) {
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  const int exponent = (h >> 10) & 0x1f;
  const int fraction = h & 0x3ff;
  if (exponent == 0) return sign * std::ldexp(double(fraction), -24);  // zero and subnormals
  if (exponent == 31) {
    return fraction == 0 ? sign * std::numeric_limits<double>::infinity()
                         : std::numeric_limits<double>::quiet_NaN();
  }
  return sign * std::ldexp(double(1024 + fraction), exponent - 25);
}

inline double ref_half_at(const uint8_t* p) {
  return ref_half(ref_u16(p));
}

// Element e (0..block_size-1) of one block starting at p.
inline double ref_block_element(uint32_t type, const uint8_t* p, uint64_t e) {
  switch (type) {
    case kF32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case kF16:
      return ref_half_at(p);
    case kBF16: {
      const uint32_t bits = uint32_t(ref_u16(p)) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    case kQ4_0: {
      const int n = e < 16 ? (p[2 + e] & 15) : (p[2 + e - 16] >> 4);
      return (n - 8) * ref_half_at(p);
    }
    case kQ4_1: {
      const int n = e < 16 ? (p[4 + e] & 15) : (p[4 + e - 16] >> 4);
      return n * ref_half_at(p) + ref_half_at(p + 2);
    }
    case kQ5_0: {
      const int n = e < 16 ? (p[6 + e] & 15) : (p[6 + e - 16] >> 4);
      const int q = n | int((ref_u32(p + 2) >> e) & 1) << 4;
      return (q - 16) * ref_half_at(p);
    }
    case kQ5_1: {
      const int n = e < 16 ? (p[8 + e] & 15) : (p[8 + e - 16] >> 4);
      const int q = n | int((ref_u32(p + 4) >> e) & 1) << 4;
      return q * ref_half_at(p) + ref_half_at(p + 2);
    }
    case kQ8_0:
      return double(int8_t(p[2 + e])) * ref_half_at(p);
    case kQ2_K: {
      const uint8_t* scales = p;
      const uint8_t* qs = p + 16;
      const uint64_t h = e / 128, r = e % 128, s = r / 32, l = r % 32, j = e / 16;
      const int q = (qs[32 * h + l] >> (2 * s)) & 3;
      return ref_half_at(p + 80) * (scales[j] & 15) * q - ref_half_at(p + 82) * (scales[j] >> 4);
    }
    case kQ3_K: {
      const uint8_t* hmask = p;
      const uint8_t* qs = p + 32;
      const uint8_t* S = p + 96;
      const uint64_t h = e / 128, r = e % 128, s = r / 32, l = r % 32, i = e / 16;
      const int lo = (qs[32 * h + l] >> (2 * s)) & 3;
      const int hb = (hmask[e % 32] >> (e / 32)) & 1;
      const int q = lo - (hb ? 0 : 4);
      const int low4 = i < 8 ? (S[i] & 15) : (S[i - 8] >> 4);
      const int high2 = (S[8 + i % 4] >> (2 * (i / 4))) & 3;
      const int sc = (low4 | high2 << 4) - 32;
      return ref_half_at(p + 108) * sc * q;
    }
    case kQ4_K:
    case kQ5_K: {
      const uint8_t* S = p + 4;
      const uint64_t j = e / 32;
      int sc, mn;
      if (j < 4) {
        sc = S[j] & 63;
        mn = S[j + 4] & 63;
      } else {
        sc = (S[j + 4] & 15) | (S[j - 4] >> 6) << 4;
        mn = (S[j + 4] >> 4) | (S[j] >> 6) << 4;
      }
      const uint8_t* qs = p + (type == kQ4_K ? 16 : 48);
      const uint64_t c = e / 64, r = e % 64;
      const uint8_t byte = qs[32 * c + r % 32];
      int q = r < 32 ? (byte & 15) : (byte >> 4);
      if (type == kQ5_K) q += 16 * ((p[16 + e % 32] >> (e / 32)) & 1);
      return ref_half_at(p) * sc * q - ref_half_at(p + 2) * mn;
    }
    case kQ6_K: {
      const uint8_t* ql = p;
      const uint8_t* qh = p + 128;
      const uint8_t* scales = p + 192;
      const uint64_t h = e / 128, r = e % 128, k = r / 32, l = r % 32;
      const uint8_t lbyte = ql[64 * h + l + 32 * (k & 1)];
      const int low4 = k < 2 ? (lbyte & 15) : (lbyte >> 4);
      const int high2 = (qh[32 * h + l] >> (2 * k)) & 3;
      const int q = (low4 | high2 << 4) - 32;
      return ref_half_at(p + 208) * double(int8_t(scales[e / 16])) * q;
    }
  }
  throw std::invalid_argument("ref_dequant: unsupported type " + std::to_string(type));
}

// Element e of a row of blocks starting at row.
inline double ref_element(uint32_t type, const uint8_t* row, uint64_t e) {
  const uint64_t blk = block_size(type);
  return ref_block_element(type, row + (e / blk) * type_size(type), e % blk);
}

// A random finite normal fp16 with random sign and magnitude in [2^-7, 2^-3) (about [0.008, 0.125))
// divided by 2^shift. Callers pick shift so that scale times the largest quant stays O(1).
inline uint16_t random_scale_half(std::mt19937_64& rng, int shift = 0) {
  const uint16_t sign = uint16_t((rng() & 1) << 15);
  const uint16_t exponent = uint16_t(8 - shift + int(rng() % 4));  // biased; 8..11 when shift 0
  return uint16_t(sign | exponent << 10 | (rng() & 0x3ff));
}

// How far below [2^-7, 2^-3) a type's block scale is drawn: the product of its sub-block scale and
// quant ranges differs by up to 2^12 between types.
inline int ref_scale_shift(uint32_t type) {
  switch (type) {
    case kQ8_0:
    case kQ3_K:
      return 3;
    case kQ4_K:
      return 5;
    case kQ5_K:
      return 6;
    case kQ6_K:
      return 7;
  }
  return 0;
}

// Byte offsets of the fp16 scale/min fields inside one block.
inline std::vector<uint64_t> ref_half_fields(uint32_t type) {
  switch (type) {
    case kQ4_0:
    case kQ5_0:
    case kQ8_0:
      return {0};
    case kQ4_1:
    case kQ5_1:
    case kQ4_K:
    case kQ5_K:
      return {0, 2};
    case kQ2_K:
      return {80, 82};
    case kQ3_K:
      return {108};
    case kQ6_K:
      return {208};
  }
  return {};
}

// n_elems elements (a multiple of the block size) of random raw blocks. Quant bytes are uniformly
// random; fp16 scales and mins come from random_scale_half, scaled per type so that
// dequantized values stay within about ±4. Plain float types get random finite
// values of magnitude below about 4.
inline std::vector<uint8_t> random_blocks(uint32_t type, uint64_t n_elems, std::mt19937_64& rng) {
  const uint64_t blk = block_size(type), bytes = type_size(type);
  if (n_elems % blk != 0) {
    throw std::invalid_argument("random_blocks: n_elems is not a multiple of the block size");
  }
  const uint64_t n_blocks = n_elems / blk;
  std::vector<uint8_t> out(n_blocks * bytes);
  for (auto& b : out) b = uint8_t(rng());
  for (uint64_t b = 0; b < n_blocks; ++b) {
    uint8_t* p = out.data() + b * bytes;
    if (type == kF32) {
      const float f = float(std::ldexp(double(int64_t(rng() % 2000001) - 1000000), -18));
      std::memcpy(p, &f, 4);
    } else if (type == kF16) {
      // Biased exponent 5..16: magnitudes in [2^-10, 4).
      const uint16_t h =
          uint16_t((rng() & 1) << 15 | uint16_t(5 + rng() % 12) << 10 | (rng() & 0x3ff));
      p[0] = uint8_t(h);
      p[1] = uint8_t(h >> 8);
    } else if (type == kBF16) {
      // Biased exponent 117..128: magnitudes in [2^-10, 4).
      const uint16_t h =
          uint16_t((rng() & 1) << 15 | uint16_t(117 + rng() % 12) << 7 | (rng() & 0x7f));
      p[0] = uint8_t(h);
      p[1] = uint8_t(h >> 8);
    } else {
      for (uint64_t off : ref_half_fields(type)) {
        const uint16_t h = random_scale_half(rng, ref_scale_shift(type));
        p[off] = uint8_t(h);
        p[off + 1] = uint8_t(h >> 8);
      }
    }
  }
  return out;
}

}  // namespace apr_test
