// SPDX-License-Identifier: MIT
// Decode kernels on 8-bit activations (q8_activations.hpp) for the 32-element block types. Part of
// isa_impl.hpp (included inside its namespace, once per instruction set).
//
// Per block the weights' small integers meet x's int8 values in an exact integer dot product;
// only the block's total is scaled (weight scale * x scale) and added in f32. The AVX paths widen
// u8 x s8 pairs with maddubs (pairs of products fit int16: at most 2 * 128 * 127) and sum them to
// eight int32 lanes; a signed weight uses the sign trick |w| x sign(x, w).

#if APR_ISA_LEVEL >= 1
inline float hsum256(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

inline __m256i load256(const void* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// u8 weights times s8 activations, summed to eight int32 lanes.
inline __m256i dot_u8s8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// s8 weights times s8 activations.
inline __m256i dot_s8s8(__m256i w, __m256i s) {
  return dot_u8s8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(s, w));
}

// 16 bytes of nibble pairs -> 32 bytes: the low nibbles (elements 0..15), then the high ones.
inline __m256i nibbles32(const uint8_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(15);
  const __m128i lo = _mm_and_si128(v, m), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// Byte i = 16 where bit i of the 32 bits (Q5 high bits) is set, else 0.
inline __m256i bit4_bytes(const uint8_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, sizeof bits);
#if APR_ISA_LEVEL == 2
  return _mm256_maskz_set1_epi8(bits, 16);
#else
  const __m256i shuffle = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                           2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuffle);
  const __m256i mask = _mm256_set1_epi64x(0x8040201008040201LL);
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, mask), mask);
  return _mm256_and_si256(set, _mm256_set1_epi8(16));
#endif
}

// The integer block product of each type, as eight int32 lanes.
struct Q4_0 {
  static constexpr size_t kBytes = 18;
  static constexpr bool kMin = false;
  static __m256i dot(const uint8_t* b, __m256i x) {
    return dot_s8s8(_mm256_sub_epi8(nibbles32(b + 2), _mm256_set1_epi8(8)), x);
  }
};
struct Q4_1 {
  static constexpr size_t kBytes = 20;
  static constexpr bool kMin = true;
  static __m256i dot(const uint8_t* b, __m256i x) { return dot_u8s8(nibbles32(b + 4), x); }
};
struct Q5_0 {
  static constexpr size_t kBytes = 22;
  static constexpr bool kMin = false;
  static __m256i dot(const uint8_t* b, __m256i x) {
    const __m256i q = _mm256_or_si256(nibbles32(b + 6), bit4_bytes(b + 2));
    return dot_s8s8(_mm256_sub_epi8(q, _mm256_set1_epi8(16)), x);
  }
};
struct Q5_1 {
  static constexpr size_t kBytes = 24;
  static constexpr bool kMin = true;
  static __m256i dot(const uint8_t* b, __m256i x) {
    return dot_u8s8(_mm256_or_si256(nibbles32(b + 8), bit4_bytes(b + 4)), x);
  }
};
struct Q8_0 {
  static constexpr size_t kBytes = 34;
  static constexpr bool kMin = false;
  static __m256i dot(const uint8_t* b, __m256i x) { return dot_s8s8(load256(b + 2), x); }
};

// Two accumulators (even and odd blocks) halve the FMA dependency chain. The min term of Q4_1 and
// Q5_1 (m * sum of x) is summed separately in f32, block by block.
template <class T>
float q8_dot(const uint8_t* row, const BlockQ8* x, size_t nb) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  float min_sum = 0.0f;
  size_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const uint8_t* b0 = row + b * T::kBytes;
    const uint8_t* b1 = b0 + T::kBytes;
    const __m256i p0 = T::dot(b0, load256(x[b].q));
    const __m256i p1 = T::dot(b1, load256(x[b + 1].q));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(half_f16c(b0) * x[b].d), acc0);
    acc1 =
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(half_f16c(b1) * x[b + 1].d), acc1);
    if constexpr (T::kMin) {
      min_sum += half_f16c(b0 + 2) * x[b].d * static_cast<float>(x[b].sum);
      min_sum += half_f16c(b1 + 2) * x[b + 1].d * static_cast<float>(x[b + 1].sum);
    }
  }
  for (; b < nb; ++b) {
    const uint8_t* b0 = row + b * T::kBytes;
    const __m256i p0 = T::dot(b0, load256(x[b].q));
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(half_f16c(b0) * x[b].d), acc0);
    if constexpr (T::kMin) min_sum += half_f16c(b0 + 2) * x[b].d * static_cast<float>(x[b].sum);
  }
  return hsum256(_mm256_add_ps(acc0, acc1)) + min_sum;
}

float dot_row_q8(apr_type type, const uint8_t* row, const BlockQ8* x, size_t n) {
  switch (type) {
    case APR_TYPE_Q4_0:
      return q8_dot<Q4_0>(row, x, n / 32);
    case APR_TYPE_Q4_1:
      return q8_dot<Q4_1>(row, x, n / 32);
    case APR_TYPE_Q5_0:
      return q8_dot<Q5_0>(row, x, n / 32);
    case APR_TYPE_Q5_1:
      return q8_dot<Q5_1>(row, x, n / 32);
    case APR_TYPE_Q8_0:
      return q8_dot<Q8_0>(row, x, n / 32);
    default:
      return 0.0f;
  }
}
#else
// Portable: each block's weights as integers (offset applied), multiplied by x's int8 values.
float dot_row_q8(apr_type type, const uint8_t* row, const BlockQ8* x, size_t n) {
  if (!q8_supported(type)) return 0.0f;
  const WeightFormat* format = find_weight_format(type);
  double total = 0.0;
  for (size_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * format->block_bytes;
    int q[32];
    float d = load_half(blk), m = 0.0f;
    switch (type) {
      case APR_TYPE_Q4_0:
        for (int j = 0; j < 16; ++j) {
          q[j] = (blk[2 + j] & 15) - 8;
          q[j + 16] = (blk[2 + j] >> 4) - 8;
        }
        break;
      case APR_TYPE_Q4_1:
        m = load_half(blk + 2);
        for (int j = 0; j < 16; ++j) {
          q[j] = blk[4 + j] & 15;
          q[j + 16] = blk[4 + j] >> 4;
        }
        break;
      case APR_TYPE_Q5_0:
      case APR_TYPE_Q5_1: {
        const bool q51 = type == APR_TYPE_Q5_1;
        if (q51) m = load_half(blk + 2);
        uint32_t qh;
        std::memcpy(&qh, blk + (q51 ? 4 : 2), sizeof qh);
        const uint8_t* qs = blk + (q51 ? 8 : 6);
        const int offset = q51 ? 0 : 16;
        for (int j = 0; j < 16; ++j) {
          q[j] = ((qs[j] & 15) | static_cast<int>(((qh >> j) & 1u) << 4)) - offset;
          q[j + 16] = ((qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4)) - offset;
        }
        break;
      }
      default:  // Q8_0
        for (int j = 0; j < 32; ++j) q[j] = static_cast<int8_t>(blk[2 + j]);
        break;
    }
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += q[j] * x[b].q[j];
    total += static_cast<double>(d) * x[b].d * s + static_cast<double>(m) * x[b].d * x[b].sum;
  }
  return static_cast<float>(total);
}
#endif
