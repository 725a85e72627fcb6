// SPDX-License-Identifier: MIT
// Integer kernels on repacked weights (packed_weights.hpp) and 8- or 16-bit activations, for CPUs
// with AVX-512 VNNI. Part of isa_impl.hpp (included inside its namespace by isa_avx512vnni.cpp
// only).
//
// For one group of 16 rows and up to 4 activation rows, block by block: vpdpbusd multiplies the
// 16 rows' unsigned quants (4 per 32-bit lane) by 4 activation bytes broadcast to every lane and
// adds to int32 lanes, exactly; the block's integer sum is then scaled once by the weight scale
// (16 lanes) times the activation scale. Offsets are folded into the integer start value: a Q4_0
// quant q stands for q - 8, so the sum starts at -8 * sum(x_q) (sum(x_q) comes with each
// activation block); Q8_0 quants are stored as q + 128 and start at -128 * sum(x_q).

// 4 bytes (signed or unsigned activations) broadcast to every 32-bit lane.
inline __m512i bcast4(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

inline __m512i load512i(const uint8_t* p) {
  return _mm512_loadu_si512(reinterpret_cast<const void*>(p));
}

inline __m512 load_half16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

struct PackedQ4 {
  static constexpr uint64_t kQuantBytes = 256;
  static constexpr bool kHigh = false, kMin = false;
  static constexpr int kStart = -8;
};
struct PackedQ4_1 : PackedQ4 {
  static constexpr bool kMin = true;
  static constexpr int kStart = 0;
};
struct PackedQ5 : PackedQ4 {
  static constexpr bool kHigh = true;
  static constexpr int kStart = -16;
};
struct PackedQ5_1 : PackedQ5 {
  static constexpr bool kMin = true;
  static constexpr int kStart = 0;
};
struct PackedQ8 {
  static constexpr uint64_t kQuantBytes = 512;
  static constexpr bool kHigh = false, kMin = false;
  static constexpr int kStart = -128;
};

// High bits of group g (0..7) at bit Pos of each byte (layout: bit g of byte e).
template <int G, int Pos = 4>
inline __m512i high_bits(__m512i h) {
  const __m512i mask = _mm512_set1_epi8(1 << Pos);
  if constexpr (G <= Pos)
    return _mm512_and_si512(_mm512_slli_epi32(h, Pos - G), mask);
  else
    return _mm512_and_si512(_mm512_srli_epi32(h, G - Pos), mask);
}

// lo/hi accumulate the products of quant register k of a nibble type.
template <class T, int K, int NX>
inline void nibble_step(const uint8_t* q, const uint8_t* h, const BlockQ8* const* xb, __m512i* lo,
                        __m512i* hi) {
  const __m512i m4 = _mm512_set1_epi8(15);
  prefetch_ahead(q + 64 * K);
  const __m512i v = load512i(q + 64 * K);
  __m512i a = _mm512_and_si512(v, m4);
  __m512i c = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
  if constexpr (T::kHigh) {
    const __m512i bits = load512i(h);
    a = _mm512_or_si512(a, high_bits<K>(bits));
    c = _mm512_or_si512(c, high_bits<K + 4>(bits));
  }
  for (int r = 0; r < NX; ++r) {
    lo[r] = _mm512_dpbusd_epi32(lo[r], a, bcast4(xb[r]->q + 4 * K));
    hi[r] = _mm512_dpbusd_epi32(hi[r], c, bcast4(xb[r]->q + 16 + 4 * K));
  }
}

// y[r * y_stride + i] = row i of the group . x row r, for i < 16, r < NX.
template <class T, int NX>
void packed_group(const uint8_t* group, size_t nb, const BlockQ8* x, float* y, size_t y_stride) {
  const uint8_t* quants = group;
  const uint8_t* high = quants + nb * T::kQuantBytes;
  const uint8_t* scales = high + (T::kHigh ? nb * 64 : 0);
  const uint8_t* mins = scales + nb * 32;
  __m512 acc[NX];
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const BlockQ8* xb[NX];
    __m512i lo[NX], hi[NX];
    for (int r = 0; r < NX; ++r) {
      xb[r] = x + r * nb + b;
      lo[r] = _mm512_set1_epi32(T::kStart * xb[r]->sum);
      hi[r] = _mm512_setzero_si512();
    }
    const uint8_t* q = quants + b * T::kQuantBytes;
    const uint8_t* h = high + b * 64;
    if constexpr (T::kHigh) prefetch_ahead(h, kPrefetchBytes / 4);
    if constexpr (T::kQuantBytes == 256) {
      nibble_step<T, 0, NX>(q, h, xb, lo, hi);
      nibble_step<T, 1, NX>(q, h, xb, lo, hi);
      nibble_step<T, 2, NX>(q, h, xb, lo, hi);
      nibble_step<T, 3, NX>(q, h, xb, lo, hi);
    } else {
      for (int k = 0; k < 8; k += 2) {
        prefetch_ahead(q + 64 * k);
        prefetch_ahead(q + 64 * (k + 1));
        const __m512i v0 = load512i(q + 64 * k), v1 = load512i(q + 64 * (k + 1));
        for (int r = 0; r < NX; ++r) {
          lo[r] = _mm512_dpbusd_epi32(lo[r], v0, bcast4(xb[r]->q + 4 * k));
          hi[r] = _mm512_dpbusd_epi32(hi[r], v1, bcast4(xb[r]->q + 4 * (k + 1)));
        }
      }
    }
    const __m512 d = load_half16(scales + b * 32);
    for (int r = 0; r < NX; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(lo[r], hi[r])),
                               _mm512_mul_ps(d, _mm512_set1_ps(xb[r]->d)), acc[r]);
    if constexpr (T::kMin) {
      const __m512 m = load_half16(mins + b * 32);
      for (int r = 0; r < NX; ++r)
        acc[r] =
            _mm512_fmadd_ps(m, _mm512_set1_ps(xb[r]->d * static_cast<float>(xb[r]->sum)), acc[r]);
    }
  }
  for (int r = 0; r < NX; ++r) _mm512_storeu_ps(y + r * y_stride, acc[r]);
}

// Calls kernel(std::integral_constant<int, NX>{}, x, y) on the x rows 4 at a time (NX = 4), then
// on the 1 to 3 left: each kernel instance keeps NX rows' accumulators in registers.
template <class Block, class Kernel>
void for_x_rows(const Block* x, size_t nb, size_t nx, float* y, size_t y_stride, Kernel kernel) {
  for (; nx >= 4; nx -= 4, x += 4 * nb, y += 4 * y_stride)
    kernel(std::integral_constant<int, 4>{}, x, y);
  switch (nx) {
    case 3:
      return kernel(std::integral_constant<int, 3>{}, x, y);
    case 2:
      return kernel(std::integral_constant<int, 2>{}, x, y);
    case 1:
      return kernel(std::integral_constant<int, 1>{}, x, y);
    default:
      return;
  }
}

// 16-bit activations (q16_activations.hpp), two ways. Every type whose quants fit a signed byte
// splits x into bytes and uses vpdpbusd (packed_group16_split and the K-type kernels). Q8_0's
// quants do not: it splits the 32-bit lanes of a packed register into 16-bit words, each word
// one quant, and vpdpwssd multiplies them by a broadcast pair of x values. Per lane and block the
// integer sums stay below 2^28 (8 steps of 2 x 255 x 32767, plus 128 x 32 x 32767).

inline __m512i bcast_pair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

// The byte-split products of quants w (4 per lane, each below 128) with x elements e..e+3:
// lo += x's low bytes (unsigned) . w, hi += w . x's high bytes (signed).
inline void split_products(__m512i& lo, __m512i& hi, const BlockQ16& x, int e, __m512i w) {
  lo = _mm512_dpbusd_epi32(lo, bcast4(x.lo + e), w);
  hi = _mm512_dpbusd_epi32(hi, w, bcast4(x.hi + e));
}

// The 4- and 5-bit legacy types on 16-bit activations split into bytes (BlockQ16::lo, hi):
// sum q x = sum q lo + 256 sum q hi, both with vpdpbusd on the quants as unpacked for 8-bit
// activations (half the unpacking of the word-split form). The integer sums are exact, so the
// result is what the word-split form gives. Per lane: lo sums < 2^19, hi sums < 2^17 before the
// shift by 8.
template <class T, int NX>
void packed_group16_split(const uint8_t* group, size_t nb, const BlockQ16* x, float* y,
                          size_t y_stride) {
  const uint8_t* quants = group;
  const uint8_t* high = quants + nb * T::kQuantBytes;
  const uint8_t* scales = high + (T::kHigh ? nb * 64 : 0);
  const uint8_t* mins = scales + nb * 32;
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512 acc[NX];
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const BlockQ16* xb[NX];
    __m512i lo0[NX], lo1[NX], hi0[NX], hi1[NX];
    for (int r = 0; r < NX; ++r) {
      xb[r] = x + r * nb + b;
      lo0[r] = lo1[r] = hi0[r] = hi1[r] = _mm512_setzero_si512();
    }
    const uint8_t* q = quants + b * T::kQuantBytes;
    const uint8_t* h = high + b * 64;
    if constexpr (T::kHigh) prefetch_ahead(h, kPrefetchBytes / 4);
    auto step = [&](auto kc) {
      constexpr int K = decltype(kc)::value;
      prefetch_ahead(q + 64 * K);
      const __m512i v = load512i(q + 64 * K);
      __m512i a = _mm512_and_si512(v, m4);                        // elements 4K..4K+3
      __m512i c = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);  // 16+4K..16+4K+3
      if constexpr (T::kHigh) {
        const __m512i bits = load512i(h);
        a = _mm512_or_si512(a, high_bits<K>(bits));
        c = _mm512_or_si512(c, high_bits<K + 4>(bits));
      }
      for (int r = 0; r < NX; ++r) {
        split_products(lo0[r], hi0[r], *xb[r], 4 * K, a);
        split_products(lo1[r], hi1[r], *xb[r], 16 + 4 * K, c);
      }
    };
    step(std::integral_constant<int, 0>{});
    step(std::integral_constant<int, 1>{});
    step(std::integral_constant<int, 2>{});
    step(std::integral_constant<int, 3>{});
    const __m512 d = load_half16(scales + b * 32);
    for (int r = 0; r < NX; ++r) {
      const __m512i lo = _mm512_add_epi32(lo0[r], lo1[r]);
      const __m512i hi = _mm512_slli_epi32(_mm512_add_epi32(hi0[r], hi1[r]), 8);
      const __m512i sum =
          _mm512_add_epi32(_mm512_add_epi32(lo, hi), _mm512_set1_epi32(T::kStart * xb[r]->sum));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(d, _mm512_set1_ps(xb[r]->d)),
                               acc[r]);
    }
    if constexpr (T::kMin) {
      const __m512 m = load_half16(mins + b * 32);
      for (int r = 0; r < NX; ++r)
        acc[r] =
            _mm512_fmadd_ps(m, _mm512_set1_ps(xb[r]->d * static_cast<float>(xb[r]->sum)), acc[r]);
    }
  }
  for (int r = 0; r < NX; ++r) _mm512_storeu_ps(y + r * y_stride, acc[r]);
}

// Q8_0 on 16-bit activations: each 16-bit word of a packed register holds two quants (q + 128),
// multiplied by a broadcast pair of x values with vpdpwssd; the sum starts at -128 * sum(x).
template <int NX>
void packed_q8_0_group16(const uint8_t* group, size_t nb, const BlockQ16* x, float* y,
                         size_t y_stride) {
  using T = PackedQ8;
  const uint8_t* quants = group;
  const uint8_t* scales = quants + nb * T::kQuantBytes;
  __m512 acc[NX];
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (size_t b = 0; b < nb; ++b) {
    const BlockQ16* xb[NX];
    // Four integer chains per x row: vpdpwssd's latency would otherwise bound the loop.
    __m512i a0[NX], a1[NX], a2[NX], a3[NX];
    for (int r = 0; r < NX; ++r) {
      xb[r] = x + r * nb + b;
      a0[r] = _mm512_set1_epi32(T::kStart * xb[r]->sum);
      a1[r] = a2[r] = a3[r] = _mm512_setzero_si512();
    }
    const uint8_t* q = quants + b * T::kQuantBytes;
    const __m512i m8 = _mm512_set1_epi16(255);
    for (int k = 0; k < 8; k += 2) {
      prefetch_ahead(q + 64 * k);
      prefetch_ahead(q + 64 * (k + 1));
      const __m512i v0 = load512i(q + 64 * k), v1 = load512i(q + 64 * (k + 1));
      const __m512i e0 = _mm512_and_si512(v0, m8), o0 = _mm512_srli_epi16(v0, 8);
      const __m512i e1 = _mm512_and_si512(v1, m8), o1 = _mm512_srli_epi16(v1, 8);
      for (int r = 0; r < NX; ++r) {
        const int16_t* xq = xb[r]->q + 4 * k;
        a0[r] = _mm512_dpwssd_epi32(a0[r], e0, bcast_pair(xq));
        a1[r] = _mm512_dpwssd_epi32(a1[r], o0, bcast_pair(xq + 2));
        a2[r] = _mm512_dpwssd_epi32(a2[r], e1, bcast_pair(xq + 4));
        a3[r] = _mm512_dpwssd_epi32(a3[r], o1, bcast_pair(xq + 6));
      }
    }
    const __m512 d = load_half16(scales + b * 32);
    for (int r = 0; r < NX; ++r) {
      const __m512i sum =
          _mm512_add_epi32(_mm512_add_epi32(a0[r], a1[r]), _mm512_add_epi32(a2[r], a3[r]));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(d, _mm512_set1_ps(xb[r]->d)),
                               acc[r]);
    }
  }
  for (int r = 0; r < NX; ++r) _mm512_storeu_ps(y + r * y_stride, acc[r]);
}

template <class T, int NX>
void packed_group16(const uint8_t* group, size_t nb, const BlockQ16* x, float* y, size_t y_stride) {
  if constexpr (T::kQuantBytes == 256)
    packed_group16_split<T, NX>(group, nb, x, y, y_stride);
  else
    packed_q8_0_group16<NX>(group, nb, x, y, y_stride);
}

// Q4_K / Q5_K: per sub-block pair, integer sums for both sub-blocks (x split into bytes as for the
// legacy 4- and 5-bit types; per lane below 2^19 and 2^17), then per
// sub-block the f32 scale d * sc (16 rows) times x's block scale, and the minimum term
// dmin * m * (x's block scale * sum of x's block).
template <bool High, int NX>
void packed_k4_group16(const uint8_t* group, size_t nsb, const BlockQ16* x, float* y,
                       size_t y_stride) {
  constexpr size_t kQuants = 4 * 8 * 64, kHigh = 4 * 2 * 64, kScales = 8 * 16;
  const uint8_t* quants = group;
  const uint8_t* highs = quants + nsb * kQuants;
  const uint8_t* scales = highs + (High ? nsb * kHigh : 0);
  const uint8_t* mins = scales + nsb * kScales;
  const uint8_t* ds = mins + nsb * kScales;
  const uint8_t* dmins = ds + nsb * 32;
  const size_t nb = nsb * 8;
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512 acc[NX];
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (size_t s = 0; s < nsb; ++s) {
    const __m512 d = load_half16(ds + s * 32), dmin = load_half16(dmins + s * 32);
    for (int c = 0; c < 4; ++c) {
      __m512i a0[NX], a1[NX], b0[NX], b1[NX];
      const BlockQ16* xa[NX];
      for (int r = 0; r < NX; ++r) {
        a0[r] = a1[r] = b0[r] = b1[r] = _mm512_setzero_si512();
        xa[r] = x + r * nb + s * 8 + 2 * c;
      }
      const uint8_t* q = quants + s * kQuants + c * 8 * 64;
      __m512i h0 = _mm512_setzero_si512(), h1 = _mm512_setzero_si512();
      if constexpr (High) {
        h0 = load512i(highs + s * kHigh + 2 * c * 64);
        h1 = load512i(highs + s * kHigh + (2 * c + 1) * 64);
        prefetch_ahead(highs + s * kHigh + 2 * c * 64, kPrefetchBytes / 4);
        prefetch_ahead(highs + s * kHigh + (2 * c + 1) * 64, kPrefetchBytes / 4);
      }
      // x split into bytes (see packed_group16_split): a0/b0 sum quant x lo, a1/b1 quant x hi.
      auto step = [&](auto kc) {
        constexpr int k = decltype(kc)::value;
        prefetch_ahead(q + 64 * k);
        const __m512i v = load512i(q + 64 * k);
        __m512i wa = _mm512_and_si512(v, m4);                        // sub 2c: 4k..4k+3
        __m512i wb = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);  // sub 2c+1: 4k..4k+3
        if constexpr (High) {
          wa = _mm512_or_si512(wa, high_bits<k>(h0));
          wb = _mm512_or_si512(wb, high_bits<k>(h1));
        }
        for (int r = 0; r < NX; ++r) {
          split_products(a0[r], a1[r], xa[r][0], 4 * k, wa);
          split_products(b0[r], b1[r], xa[r][1], 4 * k, wb);
        }
      };
      step(std::integral_constant<int, 0>{});
      step(std::integral_constant<int, 1>{});
      step(std::integral_constant<int, 2>{});
      step(std::integral_constant<int, 3>{});
      step(std::integral_constant<int, 4>{});
      step(std::integral_constant<int, 5>{});
      step(std::integral_constant<int, 6>{});
      step(std::integral_constant<int, 7>{});
      for (int half = 0; half < 2; ++half) {
        const int j = 2 * c + half;
        const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(scales + s * kScales + 16 * j))));
        const __m512 mn = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(mins + s * kScales + 16 * j))));
        const __m512 dsc = _mm512_mul_ps(d, sc), dmn = _mm512_mul_ps(dmin, mn);
        for (int r = 0; r < NX; ++r) {
          const BlockQ16& xb = xa[r][half];
          const __m512i sum = half ? _mm512_add_epi32(b0[r], _mm512_slli_epi32(b1[r], 8))
                                   : _mm512_add_epi32(a0[r], _mm512_slli_epi32(a1[r], 8));
          acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum),
                                   _mm512_mul_ps(dsc, _mm512_set1_ps(xb.d)), acc[r]);
          acc[r] = _mm512_fnmadd_ps(dmn, _mm512_set1_ps(xb.d * static_cast<float>(xb.sum)), acc[r]);
        }
      }
    }
  }
  for (int r = 0; r < NX; ++r) _mm512_storeu_ps(y + r * y_stride, acc[r]);
}

// Q6_K: per nibble-byte pair of chunks A (t = u) and B (t = u + 2) of half h, the 6-bit quants
// (0..63, so they fit a signed byte) are formed as bytes and multiplied with vpdpbusd by x split
// into bytes, as for the legacy types (packed_group16_split). Integer sums per 16-element
// sub-block (k < 4: elements 0..15, then 16..31), each starting at -32 * that sub-block's sum of
// x; after each sub-block, its int8 scale times d times x's block scale. Per lane the lo sums stay
// below 2^19 (+ the start, below 2^25), the hi sums below 2^17 before the shift by 8.
template <int NX>
void packed_k6_group16(const uint8_t* group, size_t nsb, const BlockQ16* x, float* y,
                       size_t y_stride) {
  constexpr size_t kQuants = 4 * 8 * 64, kHigh = 4 * 4 * 64, kScales = 16 * 16;
  const uint8_t* quants = group;
  const uint8_t* highs = quants + nsb * kQuants;
  const uint8_t* scales = highs + nsb * kHigh;
  const uint8_t* ds = scales + nsb * kScales;
  const size_t nb = nsb * 8;
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512 acc[NX];
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (size_t s = 0; s < nsb; ++s) {
    const __m512 d = load_half16(ds + s * 32);
    const uint8_t* sc = scales + s * kScales;
    auto scale = [&](int j) {
      return _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
                                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + 16 * j)))));
    };
    for (int p = 0; p < 4; ++p) {
      const int h = p / 2, u = p % 2;
      const BlockQ16* xa[NX];
      for (int r = 0; r < NX; ++r) xa[r] = x + r * nb + s * 8 + 4 * h + u;
      const uint8_t* q = quants + s * kQuants + p * 8 * 64;
      const uint8_t* hb = highs + s * kHigh + p * 4 * 64;
      for (int i = 0; i < 4; ++i) prefetch_ahead(hb + 64 * i, kPrefetchBytes / 2);
      const __m512i ha0 = load512i(hb), ha1 = load512i(hb + 64);
      const __m512i hb0 = load512i(hb + 128), hb1 = load512i(hb + 192);
      // One sub-block (Sub = 0: k = 0..3, elements 0..15 of both chunks; Sub = 1: k = 4..7).
      auto sub_block = [&](auto sub_c) {
        constexpr int Sub = decltype(sub_c)::value;
        __m512i alo[NX], ahi[NX], blo[NX], bhi[NX];
        for (int r = 0; r < NX; ++r) {
          const BlockQ16& a = xa[r][0];
          const BlockQ16& b = xa[r][2];
          alo[r] = _mm512_set1_epi32(-32 * (Sub ? a.sum - a.sum_lo : a.sum_lo));
          blo[r] = _mm512_set1_epi32(-32 * (Sub ? b.sum - b.sum_lo : b.sum_lo));
          ahi[r] = bhi[r] = _mm512_setzero_si512();
        }
        auto step = [&](auto kc) {
          constexpr int k = 4 * Sub + decltype(kc)::value;
          prefetch_ahead(q + 64 * k);
          const __m512i v = load512i(q + 64 * k);
          const __m512i wa = _mm512_or_si512(
              _mm512_and_si512(v, m4), _mm512_or_si512(high_bits<k, 4>(ha0), high_bits<k, 5>(ha1)));
          const __m512i wb =
              _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4),
                              _mm512_or_si512(high_bits<k, 4>(hb0), high_bits<k, 5>(hb1)));
          for (int r = 0; r < NX; ++r) {
            split_products(alo[r], ahi[r], xa[r][0], 4 * k, wa);
            split_products(blo[r], bhi[r], xa[r][2], 4 * k, wb);
          }
        };
        step(std::integral_constant<int, 0>{});
        step(std::integral_constant<int, 1>{});
        step(std::integral_constant<int, 2>{});
        step(std::integral_constant<int, 3>{});
        // Sub-block scale indices: 8h + 2t + Sub.
        const __m512 sa = scale(8 * h + 2 * u + Sub), sb = scale(8 * h + 2 * u + 4 + Sub);
        for (int r = 0; r < NX; ++r) {
          const __m512i ta = _mm512_add_epi32(alo[r], _mm512_slli_epi32(ahi[r], 8));
          const __m512i tb = _mm512_add_epi32(blo[r], _mm512_slli_epi32(bhi[r], 8));
          acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ta),
                                   _mm512_mul_ps(sa, _mm512_set1_ps(xa[r][0].d)), acc[r]);
          acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tb),
                                   _mm512_mul_ps(sb, _mm512_set1_ps(xa[r][2].d)), acc[r]);
        }
      };
      sub_block(std::integral_constant<int, 0>{});
      sub_block(std::integral_constant<int, 1>{});
    }
  }
  for (int r = 0; r < NX; ++r) _mm512_storeu_ps(y + r * y_stride, acc[r]);
}

// Q2_K / Q3_K: per chunk (h, j) of 32 elements, integer sums per 16-element sub-block from the
// 2-bit fields at bits 2j of the half's quant bytes (Q3_K: plus the high bit, value - 4, so each
// sum gets -4 * that half's sum of x), on x split into bytes as for the legacy types; then per
// sub-block d * scale * x's block scale, and for Q2_K the minimum term dmin * m * (x's block
// scale * sum of x's half block).
template <bool Q3, int NX>
void packed_k2_group16(const uint8_t* group, size_t nsb, const BlockQ16* x, float* y,
                       size_t y_stride) {
  constexpr size_t kQuants = 2 * 8 * 64, kHigh = 8 * 64, kScales = 16 * 16;
  const uint8_t* quants = group;
  const uint8_t* highs = quants + nsb * kQuants;
  const uint8_t* scales = highs + (Q3 ? nsb * kHigh : 0);
  const uint8_t* ds = scales + nsb * kScales;
  const uint8_t* dmins = ds + nsb * 32;
  const size_t nb = nsb * 8;
  const __m512i m2 = _mm512_set1_epi8(3);
  __m512 acc[NX];
  for (int r = 0; r < NX; ++r) acc[r] = _mm512_setzero_ps();
  for (size_t s = 0; s < nsb; ++s) {
    const __m512 d = load_half16(ds + s * 32);
    __m512 dmin = _mm512_setzero_ps();
    if constexpr (!Q3) dmin = load_half16(dmins + s * 32);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* q = quants + s * kQuants + h * 8 * 64;
      auto chunk = [&](auto jc) {
        constexpr int j = decltype(jc)::value;
        const BlockQ16* xb[NX];
        // Per 16-element sub-block (k < 4: the first), quant x lo and quant x hi (x split into
        // bytes, see packed_group16_split).
        __m512i lo0[NX], hi0[NX], lo1[NX], hi1[NX];
        for (int r = 0; r < NX; ++r) {
          xb[r] = x + r * nb + s * 8 + 4 * h + j;
          lo0[r] = hi0[r] = lo1[r] = hi1[r] = _mm512_setzero_si512();
        }
        __m512i hb = _mm512_setzero_si512();
        if constexpr (Q3) {
          hb = load512i(highs + s * kHigh + (4 * h + j) * 64);
          prefetch_ahead(highs + s * kHigh + (4 * h + j) * 64, kPrefetchBytes / 2);
        }
        auto step = [&](auto kc) {
          constexpr int k = decltype(kc)::value;
          prefetch_ahead(q + 64 * k);
          const __m512i v = load512i(q + 64 * k);
          __m512i w = _mm512_and_si512(_mm512_srli_epi16(v, 2 * j), m2);  // elements 4k..4k+3
          if constexpr (Q3) w = _mm512_or_si512(w, high_bits<k, 2>(hb));
          for (int r = 0; r < NX; ++r) {
            __m512i& tl = k < 4 ? lo0[r] : lo1[r];
            __m512i& th = k < 4 ? hi0[r] : hi1[r];
            split_products(tl, th, *xb[r], 4 * k, w);
          }
        };
        step(std::integral_constant<int, 0>{});
        step(std::integral_constant<int, 1>{});
        step(std::integral_constant<int, 2>{});
        step(std::integral_constant<int, 3>{});
        step(std::integral_constant<int, 4>{});
        step(std::integral_constant<int, 5>{});
        step(std::integral_constant<int, 6>{});
        step(std::integral_constant<int, 7>{});
        for (int half = 0; half < 2; ++half) {
          const __m128i raw = _mm_loadu_si128(
              reinterpret_cast<const __m128i*>(scales + s * kScales + 16 * (8 * h + 2 * j + half)));
          __m512 dsc, dmn = _mm512_setzero_ps();
          if constexpr (Q3) {
            dsc = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(raw)));
          } else {
            const __m512i b = _mm512_cvtepu8_epi32(raw);
            dsc = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_and_si512(b, _mm512_set1_epi32(15))));
            dmn = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(_mm512_srli_epi32(b, 4)));
          }
          for (int r = 0; r < NX; ++r) {
            const __m512 dx = _mm512_set1_ps(xb[r]->d);
            const int32_t x_half = half ? xb[r]->sum - xb[r]->sum_lo : xb[r]->sum_lo;
            const __m512i sum = _mm512_add_epi32(half ? lo1[r] : lo0[r],
                                                 _mm512_slli_epi32(half ? hi1[r] : hi0[r], 8));
            const __m512i total = Q3 ? _mm512_add_epi32(sum, _mm512_set1_epi32(-4 * x_half)) : sum;
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(dsc, dx), acc[r]);
            if constexpr (!Q3)
              acc[r] = _mm512_fnmadd_ps(dmn, _mm512_set1_ps(xb[r]->d * static_cast<float>(x_half)),
                                        acc[r]);
          }
        }
      };
      chunk(std::integral_constant<int, 0>{});
      chunk(std::integral_constant<int, 1>{});
      chunk(std::integral_constant<int, 2>{});
      chunk(std::integral_constant<int, 3>{});
    }
  }
  for (int r = 0; r < NX; ++r) _mm512_storeu_ps(y + r * y_stride, acc[r]);
}

// quantize_q16 (q16_activations.hpp) 32 values at a time, with the same result for every finite
// x: the same absmax and scale, the same product x * (1 / d) (not fused with anything), rounded
// to nearest with ties to even by vrndscaleps, which is what round_to_int gives below 2^22. Per
// row of a 64-token prefill the scalar loop cost about a tenth of the matmul time.
void quantize_q16_simd(const float* x, BlockQ16* out, size_t n) {
  const __m512i pair_order =
      _mm512_setr_epi32(0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15);
  const __m512 lim = _mm512_set1_ps(32767.0f), neg_lim = _mm512_set1_ps(-32767.0f);
  for (size_t b = 0; b < n / 32; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
    // max_ps returns its second operand when either is NaN: NaN values are skipped, as in
    // block_absmax.
    const __m512 a =
        _mm512_max_ps(_mm512_abs_ps(v1), _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps()));
    const float d = _mm512_reduce_max_ps(a) / 32767.0f;
    const __m512 id = _mm512_set1_ps(d > 0.0f ? 1.0f / d : 0.0f);
    auto to_int = [&](__m512 v) {
      const __m512 r =
          _mm512_roundscale_ps(_mm512_mul_ps(v, id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      return _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(r, neg_lim), lim));
    };
    const __m512i q0 = to_int(v0), q1 = to_int(v1);
    BlockQ16& o = out[b];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.q),
                        _mm512_cvtepi32_epi16(_mm512_permutexvar_epi32(pair_order, q0)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.q + 16),
                        _mm512_cvtepi32_epi16(_mm512_permutexvar_epi32(pair_order, q1)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o.lo), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o.lo + 16), _mm512_cvtepi32_epi8(q1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o.hi),
                     _mm512_cvtepi32_epi8(_mm512_srai_epi32(q0, 8)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o.hi + 16),
                     _mm512_cvtepi32_epi8(_mm512_srai_epi32(q1, 8)));
    o.d = d;
    o.sum_lo = _mm512_reduce_add_epi32(q0);
    o.sum = o.sum_lo + _mm512_reduce_add_epi32(q1);
  }
}

// The 32-element block types, on 8- or 16-bit activations.
template <class T, class Block>
void legacy_rows(const uint8_t* group, size_t nb, const Block* x, size_t nx, float* y,
                 size_t y_stride) {
  for_x_rows(x, nb, nx, y, y_stride, [&](auto n, const Block* xr, float* yr) {
    if constexpr (std::is_same_v<Block, BlockQ8>)
      packed_group<T, decltype(n)::value>(group, nb, xr, yr, y_stride);
    else
      packed_group16<T, decltype(n)::value>(group, nb, xr, yr, y_stride);
  });
}

void packed_gemm_q8(apr_type type, const uint8_t* group, size_t n_cols, const BlockQ8* x, size_t nx,
                    float* y, size_t y_stride) {
  const size_t nb = n_cols / 32;
  switch (type) {
    case APR_TYPE_Q4_0:
      return legacy_rows<PackedQ4>(group, nb, x, nx, y, y_stride);
    case APR_TYPE_Q4_1:
      return legacy_rows<PackedQ4_1>(group, nb, x, nx, y, y_stride);
    case APR_TYPE_Q5_0:
      return legacy_rows<PackedQ5>(group, nb, x, nx, y, y_stride);
    case APR_TYPE_Q5_1:
      return legacy_rows<PackedQ5_1>(group, nb, x, nx, y, y_stride);
    case APR_TYPE_Q8_0:
      return legacy_rows<PackedQ8>(group, nb, x, nx, y, y_stride);
    default:
      return;
  }
}

void packed_gemm_q16(apr_type type, const uint8_t* group, size_t n_cols, const BlockQ16* x,
                     size_t nx, float* y, size_t y_stride) {
  const size_t nb = n_cols / 32;
  auto rows = [&](auto kernel) { for_x_rows(x, nb, nx, y, y_stride, kernel); };
  switch (type) {
    case APR_TYPE_Q4_K:
      return rows([&](auto n, const BlockQ16* xr, float* yr) {
        packed_k4_group16<false, decltype(n)::value>(group, n_cols / 256, xr, yr, y_stride);
      });
    case APR_TYPE_Q5_K:
      return rows([&](auto n, const BlockQ16* xr, float* yr) {
        packed_k4_group16<true, decltype(n)::value>(group, n_cols / 256, xr, yr, y_stride);
      });
    case APR_TYPE_Q2_K:
      return rows([&](auto n, const BlockQ16* xr, float* yr) {
        packed_k2_group16<false, decltype(n)::value>(group, n_cols / 256, xr, yr, y_stride);
      });
    case APR_TYPE_Q3_K:
      return rows([&](auto n, const BlockQ16* xr, float* yr) {
        packed_k2_group16<true, decltype(n)::value>(group, n_cols / 256, xr, yr, y_stride);
      });
    case APR_TYPE_Q6_K:
      return rows([&](auto n, const BlockQ16* xr, float* yr) {
        packed_k6_group16<decltype(n)::value>(group, n_cols / 256, xr, yr, y_stride);
      });
    case APR_TYPE_Q4_0:
      return legacy_rows<PackedQ4>(group, nb, x, nx, y, y_stride);
    case APR_TYPE_Q4_1:
      return legacy_rows<PackedQ4_1>(group, nb, x, nx, y, y_stride);
    case APR_TYPE_Q5_0:
      return legacy_rows<PackedQ5>(group, nb, x, nx, y, y_stride);
    case APR_TYPE_Q5_1:
      return legacy_rows<PackedQ5_1>(group, nb, x, nx, y, y_stride);
    case APR_TYPE_Q8_0:
      return legacy_rows<PackedQ8>(group, nb, x, nx, y, y_stride);
    default:
      return;
  }
}
