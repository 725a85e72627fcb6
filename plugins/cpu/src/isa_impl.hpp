// SPDX-License-Identifier: MIT
// Kernel bodies shared by every instruction set. Included (deliberately without an include guard)
// by isa_scalar.cpp, isa_avx2.cpp and isa_avx512.cpp inside a `#pragma GCC target` region, with
// APR_ISA_NS naming the namespace and APR_ISA_LEVEL 0 (scalar), 1 (AVX2+FMA) or 2 (AVX-512).
// The including file has already included every standard header used here, so none of them is
// compiled for a target the machine may lack.

namespace apr_cpu::APR_ISA_NS {
namespace {

#if APR_ISA_LEVEL == 2
struct Vec {
  using reg = __m512;
  static constexpr size_t lanes = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static void store(float* p, reg a) { _mm512_storeu_ps(p, a); }
  // The maskz forms avoid GCC 12's false "uninitialized" warnings on the unmasked intrinsics.
  static double hsum(reg a) {
    const __m256 v = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xFF, a, 0),
                                   _mm512_maskz_extractf32x8_ps(0xFF, a, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};
#elif APR_ISA_LEVEL == 1
struct Vec {
  using reg = __m256;
  static constexpr size_t lanes = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static void store(float* p, reg a) { _mm256_storeu_ps(p, a); }
  static double hsum(reg a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};
#else
// Without SIMD the products of two floats are exact in double, so one rounding per addition.
struct Vec {
  using reg = double;
  static constexpr size_t lanes = 1;
  static reg zero() { return 0.0; }
  static reg load(const float* p) { return *p; }
  static reg fma(reg a, reg b, reg c) { return a * b + c; }
  static reg add(reg a, reg b) { return a + b; }
  static double hsum(reg a) { return a; }
};
#endif

constexpr size_t L = Vec::lanes;

// Software prefetch of the weight stream, this many bytes ahead of each 64-byte weight load (and
// proportionally less for smaller regions read alongside, e.g. high-bit planes). Decode reads
// every weight once from DRAM; the hardware prefetchers alone left 2-thread decode of the
// repacked Q8_0 weights at 70 % of the read bandwidth, and 4 KiB ahead raised it by about a
// quarter (1, 2, 4, 8 and 16 KiB were measured; prefetching into L2 only was no better).
constexpr size_t kPrefetchBytes = 4096;
inline void prefetch_ahead(const uint8_t* p, size_t distance = kPrefetchBytes) {
  // Through an integer: the address may lie past the end of the weights (a prefetch never
  // faults), where pointer arithmetic would be undefined.
  __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(p) + distance), 0,
                     3);
}

// Four independent accumulators: shorter dependency chains and smaller rounding error.
struct DotAccumulator {
  // A user-written constructor (not default member initialisers): the implicit one is generated
  // without this file's target options, which makes GCC 12 fail at -O0.
  DotAccumulator() : r0(Vec::zero()), r1(Vec::zero()), r2(Vec::zero()), r3(Vec::zero()) {}

  Vec::reg r0, r1, r2, r3;
  double tail = 0.0;

  // PrefetchA: a is a weight row streamed from memory (see prefetch_ahead).
  template <bool PrefetchA = false>
  void add(const float* a, const float* b, size_t n) {
    size_t i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
      if constexpr (PrefetchA)
        for (size_t line = 0; line < 4 * L * sizeof(float); line += 64)
          prefetch_ahead(reinterpret_cast<const uint8_t*>(a + i) + line);
      r0 = Vec::fma(Vec::load(a + i), Vec::load(b + i), r0);
      r1 = Vec::fma(Vec::load(a + i + L), Vec::load(b + i + L), r1);
      r2 = Vec::fma(Vec::load(a + i + 2 * L), Vec::load(b + i + 2 * L), r2);
      r3 = Vec::fma(Vec::load(a + i + 3 * L), Vec::load(b + i + 3 * L), r3);
    }
    for (; i + L <= n; i += L) r0 = Vec::fma(Vec::load(a + i), Vec::load(b + i), r0);
    for (; i < n; ++i) tail += static_cast<double>(a[i]) * b[i];
  }
  float sum() const {
    return static_cast<float>(Vec::hsum(Vec::add(Vec::add(r0, r1), Vec::add(r2, r3))) + tail);
  }
};

void decode_f16(const uint8_t* src, float* y, size_t n) {
  size_t i = 0;
#if APR_ISA_LEVEL == 2
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(
        y + i, _mm512_maskz_cvtph_ps(
                   0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i))));
#elif APR_ISA_LEVEL == 1
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
#endif
  for (; i < n; ++i) y[i] = load_half(src + 2 * i);
}

void decode_bf16(const uint8_t* src, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(load_u16(src + 2 * i)) << 16;
    std::memcpy(y + i, &bits, sizeof bits);
  }
}

void decode_q4_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 15) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void decode_q4_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 15) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

void decode_q5_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, sizeof qh);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 15) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

void decode_q5_1(const uint8_t* b, float* y) {
  const float d = load_half(b), m = load_half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, sizeof qh);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 15) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}

void decode_q8_0(const uint8_t* b, float* y) {
  const float d = load_half(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

void decode_q2_k(const uint8_t* b, float* y) {
  const uint8_t* sc = b;
  const uint8_t* qs = b + 16;
  const float d = load_half(b + 80), dmin = load_half(b + 82);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int half = 0; half < 2; ++half) {
        const int j = 8 * h + 2 * s + half;
        const float dl = d * static_cast<float>(sc[j] & 15);
        const float ml = dmin * static_cast<float>(sc[j] >> 4);
        float* out = y + 128 * h + 32 * s + 16 * half;
        const uint8_t* q = qs + 32 * h + 16 * half;
        for (int l = 0; l < 16; ++l) out[l] = dl * static_cast<float>((q[l] >> (2 * s)) & 3) - ml;
      }
}

void decode_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* S = b + 96;
  const float d = load_half(b + 108);
  for (int h = 0; h < 2; ++h)
    for (int s = 0; s < 4; ++s)
      for (int half = 0; half < 2; ++half) {
        const int i = 8 * h + 2 * s + half;
        const int low4 = i < 8 ? (S[i] & 15) : (S[i - 8] >> 4);
        const int high2 = (S[8 + i % 4] >> (2 * (i / 4))) & 3;
        const float dl = d * static_cast<float>((low4 | (high2 << 4)) - 32);
        const int shift = 2 * s, hbit = 4 * h + s;
        float* out = y + 128 * h + 32 * s + 16 * half;
        const uint8_t* q = qs + 32 * h + 16 * half;
        const uint8_t* hm = hmask + 16 * half;
        for (int l = 0; l < 16; ++l) {
          const int lo = (q[l] >> shift) & 3;
          const int offset = ((hm[l] >> hbit) & 1) ? 0 : 4;
          out[l] = dl * static_cast<float>(lo - offset);
        }
      }
}

void decode_q4_k(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* S = b + 4;
  const uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c) {
    int sc0, m0, sc1, m1;
    k4_scale_min(2 * c, S, sc0, m0);
    k4_scale_min(2 * c + 1, S, sc1, m1);
    const float d0 = d * static_cast<float>(sc0), n0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(sc1), n1 = dmin * static_cast<float>(m1);
    const uint8_t* q = qs + 32 * c;
    float* out = y + 64 * c;
    for (int l = 0; l < 32; ++l) out[l] = d0 * static_cast<float>(q[l] & 15) - n0;
    for (int l = 0; l < 32; ++l) out[32 + l] = d1 * static_cast<float>(q[l] >> 4) - n1;
  }
}

void decode_q5_k(const uint8_t* b, float* y) {
  const float d = load_half(b), dmin = load_half(b + 2);
  const uint8_t* S = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int c = 0; c < 4; ++c) {
    int sc0, m0, sc1, m1;
    k4_scale_min(2 * c, S, sc0, m0);
    k4_scale_min(2 * c + 1, S, sc1, m1);
    const float d0 = d * static_cast<float>(sc0), n0 = dmin * static_cast<float>(m0);
    const float d1 = d * static_cast<float>(sc1), n1 = dmin * static_cast<float>(m1);
    const uint8_t* q = qs + 32 * c;
    float* out = y + 64 * c;
    for (int l = 0; l < 32; ++l)
      out[l] = d0 * static_cast<float>((q[l] & 15) | (((qh[l] >> (2 * c)) & 1) << 4)) - n0;
    for (int l = 0; l < 32; ++l)
      out[32 + l] = d1 * static_cast<float>((q[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4)) - n1;
  }
}

void decode_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = load_half(b + 208);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* lo = ql + 64 * h;
    const uint8_t* hi = qh + 32 * h;
    float* out = y + 128 * h;
    const int8_t* s = sc + 8 * h;
    for (int k = 0; k < 4; ++k)
      for (int half = 0; half < 2; ++half) {
        const float dl = d * static_cast<float>(s[2 * k + half]);
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const uint8_t byte = lo[l + 32 * (k & 1)];
          const int low4 = k < 2 ? (byte & 15) : (byte >> 4);
          const int q = (low4 | (((hi[l] >> (2 * k)) & 3) << 4)) - 32;
          out[32 * k + l] = dl * static_cast<float>(q);
        }
      }
  }
}

template <void (*DecodeBlock)(const uint8_t*, float*), size_t BlockElems, size_t BlockBytes>
void decode_blocks(const uint8_t* src, float* y, size_t n) {
  for (size_t i = 0; i < n; i += BlockElems) DecodeBlock(src + i / BlockElems * BlockBytes, y + i);
}

void decode_row(apr_type type, const uint8_t* row, float* y, size_t n) {
  switch (type) {
    case APR_TYPE_F32:
      std::memcpy(y, row, n * sizeof(float));
      return;
    case APR_TYPE_F16:
      decode_f16(row, y, n);
      return;
    case APR_TYPE_BF16:
      decode_bf16(row, y, n);
      return;
    case APR_TYPE_Q4_0:
      decode_blocks<decode_q4_0, 32, 18>(row, y, n);
      return;
    case APR_TYPE_Q4_1:
      decode_blocks<decode_q4_1, 32, 20>(row, y, n);
      return;
    case APR_TYPE_Q5_0:
      decode_blocks<decode_q5_0, 32, 22>(row, y, n);
      return;
    case APR_TYPE_Q5_1:
      decode_blocks<decode_q5_1, 32, 24>(row, y, n);
      return;
    case APR_TYPE_Q8_0:
      decode_blocks<decode_q8_0, 32, 34>(row, y, n);
      return;
    case APR_TYPE_Q2_K:
      decode_blocks<decode_q2_k, 256, 84>(row, y, n);
      return;
    case APR_TYPE_Q3_K:
      decode_blocks<decode_q3_k, 256, 110>(row, y, n);
      return;
    case APR_TYPE_Q4_K:
      decode_blocks<decode_q4_k, 256, 144>(row, y, n);
      return;
    case APR_TYPE_Q5_K:
      decode_blocks<decode_q5_k, 256, 176>(row, y, n);
      return;
    case APR_TYPE_Q6_K:
      decode_blocks<decode_q6_k, 256, 210>(row, y, n);
      return;
    default:
      return;  // weight_create admits only the types above
  }
}

float dot(const float* a, const float* b, size_t n) {
  DotAccumulator acc;
  acc.add(a, b, n);
  return acc.sum();
}

#if APR_ISA_LEVEL >= 1
// Integer lanes matching Vec's float lanes: bytes widened to 32-bit ints, then converted. Used by
// the fused kernels of every type.
#if APR_ISA_LEVEL == 2
struct IVec {
  using reg = __m512i;
  static reg u8(const uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static reg i8(const uint8_t* p) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static reg set1(int v) { return _mm512_set1_epi32(v); }
  static reg and_(reg a, int m) { return _mm512_and_si512(a, set1(m)); }
  static reg or_(reg a, reg b) { return _mm512_or_si512(a, b); }
  static reg sub(reg a, int v) { return _mm512_sub_epi32(a, set1(v)); }
  template <int N>
  static reg srl(reg a) {
    return _mm512_srli_epi32(a, N);
  }
  template <int N>
  static reg sll(reg a) {
    return _mm512_slli_epi32(a, N);
  }
  // Lane i: bit (first + i) of bits, moved to bit 4.
  static reg bit4(uint32_t bits, int first) {
    const reg shifts = _mm512_add_epi32(
        set1(first), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    return sll<4>(and_(_mm512_srlv_epi32(set1(static_cast<int>(bits)), shifts), 1));
  }
  static reg srl_n(reg a, int n) { return _mm512_srl_epi32(a, _mm_cvtsi32_si128(n)); }
  static __m512 to_float(reg a) { return _mm512_cvtepi32_ps(a); }
};
inline __m512 vload_bf16(const uint8_t* p) {
  const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
}
inline __m512 vset1(float v) {
  return _mm512_set1_ps(v);
}
inline __m512 vmul(__m512 a, __m512 b) {
  return _mm512_mul_ps(a, b);
}
inline __m512 vfmsub(__m512 a, __m512 b, __m512 c) {
  return _mm512_fmsub_ps(a, b, c);
}
inline __m512 vload_half(const uint8_t* p) {
  return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
#else
struct IVec {
  using reg = __m256i;
  static reg u8(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static reg i8(const uint8_t* p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static reg set1(int v) { return _mm256_set1_epi32(v); }
  static reg and_(reg a, int m) { return _mm256_and_si256(a, set1(m)); }
  static reg or_(reg a, reg b) { return _mm256_or_si256(a, b); }
  static reg sub(reg a, int v) { return _mm256_sub_epi32(a, set1(v)); }
  template <int N>
  static reg srl(reg a) {
    return _mm256_srli_epi32(a, N);
  }
  template <int N>
  static reg sll(reg a) {
    return _mm256_slli_epi32(a, N);
  }
  static reg bit4(uint32_t bits, int first) {
    const reg shifts = _mm256_add_epi32(set1(first), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return sll<4>(and_(_mm256_srlv_epi32(set1(static_cast<int>(bits)), shifts), 1));
  }
  static reg srl_n(reg a, int n) { return _mm256_srl_epi32(a, _mm_cvtsi32_si128(n)); }
  static __m256 to_float(reg a) { return _mm256_cvtepi32_ps(a); }
};
inline __m256 vload_bf16(const uint8_t* p) {
  const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}
inline __m256 vset1(float v) {
  return _mm256_set1_ps(v);
}
inline __m256 vmul(__m256 a, __m256 b) {
  return _mm256_mul_ps(a, b);
}
inline __m256 vfmsub(__m256 a, __m256 b, __m256 c) {
  return _mm256_fmsub_ps(a, b, c);
}
inline __m256 vload_half(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
#endif

inline float half_f16c(const uint8_t* p) {
  return _cvtsh_ss(load_u16(p));
}

// Four accumulators, rotated per vector so consecutive FMAs are independent.
struct FusedAccumulator {
  FusedAccumulator() : r0(Vec::zero()), r1(Vec::zero()), r2(Vec::zero()), r3(Vec::zero()) {}

  // The registers rotate rather than an index, so they stay in registers (an indexed array would
  // live on the stack); the moves cost nothing after register renaming.
  void add(Vec::reg w, const float* x) {
    const Vec::reg t = Vec::fma(w, Vec::load(x), r0);
    r0 = r1;
    r1 = r2;
    r2 = r3;
    r3 = t;
  }
  float sum() const {
    return static_cast<float>(Vec::hsum(Vec::add(Vec::add(r0, r1), Vec::add(r2, r3))));
  }

  Vec::reg r0, r1, r2, r3;
};

// Weights are formed exactly as the block decoders form them (same products, same single
// rounding), then multiplied into x.
float fused_q8_0(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * 34;
    const Vec::reg d = vset1(half_f16c(blk));
    for (size_t j = 0; j < 32; j += L)
      acc.add(vmul(IVec::to_float(IVec::i8(blk + 2 + j)), d), x + 32 * b + j);
  }
  return acc.sum();
}

float fused_q5_0(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * 22;
    const Vec::reg d = vset1(half_f16c(blk));
    uint32_t qh;
    std::memcpy(&qh, blk + 2, sizeof qh);
    for (size_t j = 0; j < 16; j += L) {
      const IVec::reg q = IVec::u8(blk + 6 + j);
      const IVec::reg lo = IVec::or_(IVec::and_(q, 15), IVec::bit4(qh, static_cast<int>(j)));
      const IVec::reg hi = IVec::or_(IVec::srl<4>(q), IVec::bit4(qh, static_cast<int>(j) + 16));
      acc.add(vmul(IVec::to_float(IVec::sub(lo, 16)), d), x + 32 * b + j);
      acc.add(vmul(IVec::to_float(IVec::sub(hi, 16)), d), x + 32 * b + 16 + j);
    }
  }
  return acc.sum();
}

float fused_q4_0(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * 18;
    const Vec::reg d = vset1(half_f16c(blk));
    for (size_t j = 0; j < 16; j += L) {
      const IVec::reg q = IVec::u8(blk + 2 + j);
      acc.add(vmul(IVec::to_float(IVec::sub(IVec::and_(q, 15), 8)), d), x + 32 * b + j);
      acc.add(vmul(IVec::to_float(IVec::sub(IVec::srl<4>(q), 8)), d), x + 32 * b + 16 + j);
    }
  }
  return acc.sum();
}

// Q4_1 and Q5_1 weights are d * q + m: one FMA forms each, as in the block decoders.
float fused_q4_1(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * 20;
    const Vec::reg d = vset1(half_f16c(blk)), m = vset1(half_f16c(blk + 2));
    for (size_t j = 0; j < 16; j += L) {
      const IVec::reg q = IVec::u8(blk + 4 + j);
      acc.add(Vec::fma(IVec::to_float(IVec::and_(q, 15)), d, m), x + 32 * b + j);
      acc.add(Vec::fma(IVec::to_float(IVec::srl<4>(q)), d, m), x + 32 * b + 16 + j);
    }
  }
  return acc.sum();
}

float fused_q5_1(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 32; ++b) {
    const uint8_t* blk = row + b * 24;
    const Vec::reg d = vset1(half_f16c(blk)), m = vset1(half_f16c(blk + 2));
    uint32_t qh;
    std::memcpy(&qh, blk + 4, sizeof qh);
    for (size_t j = 0; j < 16; j += L) {
      const IVec::reg q = IVec::u8(blk + 8 + j);
      const IVec::reg lo = IVec::or_(IVec::and_(q, 15), IVec::bit4(qh, static_cast<int>(j)));
      const IVec::reg hi = IVec::or_(IVec::srl<4>(q), IVec::bit4(qh, static_cast<int>(j) + 16));
      acc.add(Vec::fma(IVec::to_float(lo), d, m), x + 32 * b + j);
      acc.add(Vec::fma(IVec::to_float(hi), d, m), x + 32 * b + 16 + j);
    }
  }
  return acc.sum();
}

float fused_q2_k(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 256; ++b) {
    const uint8_t* blk = row + b * 84;
    const float d = half_f16c(blk + 80), dmin = half_f16c(blk + 82);
    for (int h = 0; h < 2; ++h)
      for (int s = 0; s < 4; ++s)
        for (int half = 0; half < 2; ++half) {
          const int j = 8 * h + 2 * s + half;
          const Vec::reg dl = vset1(d * static_cast<float>(blk[j] & 15));
          const Vec::reg ml = vset1(dmin * static_cast<float>(blk[j] >> 4));
          const uint8_t* q = blk + 16 + 32 * h + 16 * half;
          const float* xs = x + 256 * b + 128 * h + 32 * s + 16 * half;
          for (size_t l = 0; l < 16; l += L) {
            const IVec::reg v = IVec::and_(IVec::srl_n(IVec::u8(q + l), 2 * s), 3);
            acc.add(vfmsub(dl, IVec::to_float(v), ml), xs + l);
          }
        }
  }
  return acc.sum();
}

float fused_q3_k(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 256; ++b) {
    const uint8_t* blk = row + b * 110;
    const uint8_t* S = blk + 96;
    const float d = half_f16c(blk + 108);
    for (int h = 0; h < 2; ++h)
      for (int s = 0; s < 4; ++s)
        for (int half = 0; half < 2; ++half) {
          const int i = 8 * h + 2 * s + half;
          const int low4 = i < 8 ? (S[i] & 15) : (S[i - 8] >> 4);
          const int high2 = (S[8 + i % 4] >> (2 * (i / 4))) & 3;
          const Vec::reg dl = vset1(d * static_cast<float>((low4 | (high2 << 4)) - 32));
          const int shift = 2 * s, hbit = 4 * h + s;
          const uint8_t* q = blk + 32 + 32 * h + 16 * half;
          const uint8_t* hm = blk + 16 * half;
          const float* xs = x + 256 * b + 128 * h + 32 * s + 16 * half;
          for (size_t l = 0; l < 16; l += L) {
            // q - 4 + 4 * hbit: the high bit set means no offset.
            const IVec::reg lo = IVec::and_(IVec::srl_n(IVec::u8(q + l), shift), 3);
            const IVec::reg hb = IVec::and_(IVec::srl_n(IVec::u8(hm + l), hbit), 1);
            const IVec::reg v = IVec::sub(IVec::or_(lo, IVec::sll<2>(hb)), 4);
            acc.add(vmul(dl, IVec::to_float(v)), xs + l);
          }
        }
  }
  return acc.sum();
}

float fused_q4_k(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 256; ++b) {
    const uint8_t* blk = row + b * 144;
    const float d = half_f16c(blk), dmin = half_f16c(blk + 2);
    const uint8_t* S = blk + 4;
    const float* xb = x + 256 * b;
    for (int c = 0; c < 4; ++c) {
      int sc0, m0, sc1, m1;
      k4_scale_min(2 * c, S, sc0, m0);
      k4_scale_min(2 * c + 1, S, sc1, m1);
      const Vec::reg d0 = vset1(d * static_cast<float>(sc0)),
                     n0 = vset1(dmin * static_cast<float>(m0));
      const Vec::reg d1 = vset1(d * static_cast<float>(sc1)),
                     n1 = vset1(dmin * static_cast<float>(m1));
      const uint8_t* q = blk + 16 + 32 * c;
      for (size_t l = 0; l < 32; l += L) {
        const IVec::reg v = IVec::u8(q + l);
        acc.add(vfmsub(d0, IVec::to_float(IVec::and_(v, 15)), n0), xb + 64 * c + l);
        acc.add(vfmsub(d1, IVec::to_float(IVec::srl<4>(v)), n1), xb + 64 * c + 32 + l);
      }
    }
  }
  return acc.sum();
}

float fused_q6_k(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 256; ++b) {
    const uint8_t* blk = row + b * 210;
    const float d = half_f16c(blk + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = blk + 64 * h;
      const uint8_t* qh = blk + 128 + 32 * h;
      const float* xh = x + 256 * b + 128 * h;
      for (size_t l = 0; l < 32; l += L) {
        const IVec::reg hv = IVec::u8(qh + l), a = IVec::u8(ql + l), c = IVec::u8(ql + 32 + l);
        const size_t si = 8 * h + l / 16;  // scale of element 128h + 32k + l is sc[si + 2k]
        const IVec::reg q0 = IVec::or_(IVec::and_(a, 15), IVec::sll<4>(IVec::and_(hv, 3)));
        const IVec::reg q1 =
            IVec::or_(IVec::and_(c, 15), IVec::sll<4>(IVec::and_(IVec::srl<2>(hv), 3)));
        const IVec::reg q2 =
            IVec::or_(IVec::srl<4>(a), IVec::sll<4>(IVec::and_(IVec::srl<4>(hv), 3)));
        const IVec::reg q3 = IVec::or_(IVec::srl<4>(c), IVec::sll<4>(IVec::srl<6>(hv)));
        acc.add(vmul(vset1(d * sc[si]), IVec::to_float(IVec::sub(q0, 32))), xh + l);
        acc.add(vmul(vset1(d * sc[si + 2]), IVec::to_float(IVec::sub(q1, 32))), xh + 32 + l);
        acc.add(vmul(vset1(d * sc[si + 4]), IVec::to_float(IVec::sub(q2, 32))), xh + 64 + l);
        acc.add(vmul(vset1(d * sc[si + 6]), IVec::to_float(IVec::sub(q3, 32))), xh + 96 + l);
      }
    }
  }
  return acc.sum();
}

float fused_q5_k(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  for (size_t b = 0; b < n / 256; ++b) {
    const uint8_t* blk = row + b * 176;
    const float d = half_f16c(blk), dmin = half_f16c(blk + 2);
    const uint8_t* S = blk + 4;
    const uint8_t* qh = blk + 16;
    const float* xb = x + 256 * b;
    for (int c = 0; c < 4; ++c) {
      int sc0, m0, sc1, m1;
      k4_scale_min(2 * c, S, sc0, m0);
      k4_scale_min(2 * c + 1, S, sc1, m1);
      const Vec::reg d0 = vset1(d * static_cast<float>(sc0));
      const Vec::reg n0 = vset1(dmin * static_cast<float>(m0));
      const Vec::reg d1 = vset1(d * static_cast<float>(sc1));
      const Vec::reg n1 = vset1(dmin * static_cast<float>(m1));
      const uint8_t* q = blk + 48 + 32 * c;
      for (size_t l = 0; l < 32; l += L) {
        const IVec::reg v = IVec::u8(q + l), h = IVec::u8(qh + l);
        const IVec::reg lo =
            IVec::or_(IVec::and_(v, 15), IVec::sll<4>(IVec::and_(IVec::srl_n(h, 2 * c), 1)));
        const IVec::reg hi =
            IVec::or_(IVec::srl<4>(v), IVec::sll<4>(IVec::and_(IVec::srl_n(h, 2 * c + 1), 1)));
        acc.add(vfmsub(d0, IVec::to_float(lo), n0), xb + 64 * c + l);
        acc.add(vfmsub(d1, IVec::to_float(hi), n1), xb + 64 * c + 32 + l);
      }
    }
  }
  return acc.sum();
}

float fused_bf16(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  size_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    if (i * 2 % 64 == 0) prefetch_ahead(row + 2 * i);
    acc.add(vload_bf16(row + 2 * i), x + i);
    acc.add(vload_bf16(row + 2 * i + 2 * L), x + i + L);
  }
  for (; i + L <= n; i += L) acc.add(vload_bf16(row + 2 * i), x + i);
  double tail = 0.0;
  for (; i < n; ++i) tail += static_cast<double>(bf16_to_float(load_u16(row + 2 * i))) * x[i];
  return static_cast<float>(acc.sum() + tail);
}

float fused_f16(const uint8_t* row, const float* x, size_t n) {
  FusedAccumulator acc;
  size_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    if (i * 2 % 64 == 0) prefetch_ahead(row + 2 * i);
    acc.add(vload_half(row + 2 * i), x + i);
    acc.add(vload_half(row + 2 * i + 2 * L), x + i + L);
  }
  for (; i + L <= n; i += L) acc.add(vload_half(row + 2 * i), x + i);
  double tail = 0.0;
  for (; i < n; ++i) tail += static_cast<double>(load_half(row + 2 * i)) * x[i];
  return static_cast<float>(acc.sum() + tail);
}
#endif

// Decodes 256 elements at a time into an L1-resident buffer and folds them into the running sums,
// so the weights are read once and never materialised in full.
float dot_row(apr_type type, const uint8_t* row, const float* x, size_t n) {
  const WeightFormat* format = find_weight_format(type);
  if (!format) return 0.0f;
#if APR_ISA_LEVEL >= 1
  switch (type) {
    case APR_TYPE_Q8_0:
      return fused_q8_0(row, x, n);
    case APR_TYPE_Q5_0:
      return fused_q5_0(row, x, n);
    case APR_TYPE_Q4_0:
      return fused_q4_0(row, x, n);
    case APR_TYPE_Q4_1:
      return fused_q4_1(row, x, n);
    case APR_TYPE_Q5_1:
      return fused_q5_1(row, x, n);
    case APR_TYPE_Q2_K:
      return fused_q2_k(row, x, n);
    case APR_TYPE_Q3_K:
      return fused_q3_k(row, x, n);
    case APR_TYPE_Q4_K:
      return fused_q4_k(row, x, n);
    case APR_TYPE_Q6_K:
      return fused_q6_k(row, x, n);
    case APR_TYPE_Q5_K:
      return fused_q5_k(row, x, n);
    case APR_TYPE_F16:
      return fused_f16(row, x, n);
    case APR_TYPE_BF16:
      return fused_bf16(row, x, n);
    default:
      break;
  }
#endif
  DotAccumulator acc;
  if (type == APR_TYPE_F32) {
    acc.add<true>(reinterpret_cast<const float*>(row), x, n);
    return acc.sum();
  }
  constexpr size_t kChunk = 256;
  alignas(64) float buf[kChunk];
  const size_t chunk_bytes = kChunk / format->block_elems * format->block_bytes;
  for (size_t i = 0; i < n; i += kChunk) {
    const size_t len = n - i < kChunk ? n - i : kChunk;
    decode_row(type, row + i / kChunk * chunk_bytes, buf, len);
    acc.add(buf, x + i, len);
  }
  return acc.sum();
}

// One accumulator per output: every output of a tile is summed in the same order whatever the
// tile shape, so results do not depend on how the work was blocked.
template <size_t NW, size_t NX>
void dot_micro(const float* w, size_t ws, const float* x, size_t xs, float* y, size_t ys,
               size_t n) {
  Vec::reg acc[NW][NX];
  for (size_t iw = 0; iw < NW; ++iw)
    for (size_t ix = 0; ix < NX; ++ix) acc[iw][ix] = Vec::zero();
  size_t i = 0;
  for (; i + L <= n; i += L) {
    Vec::reg xv[NX];
    for (size_t ix = 0; ix < NX; ++ix) xv[ix] = Vec::load(x + ix * xs + i);
    for (size_t iw = 0; iw < NW; ++iw) {
      const Vec::reg wv = Vec::load(w + iw * ws + i);
      for (size_t ix = 0; ix < NX; ++ix) acc[iw][ix] = Vec::fma(wv, xv[ix], acc[iw][ix]);
    }
  }
  for (size_t iw = 0; iw < NW; ++iw)
    for (size_t ix = 0; ix < NX; ++ix) {
      double s = Vec::hsum(acc[iw][ix]);
      for (size_t j = i; j < n; ++j) s += static_cast<double>(w[iw * ws + j]) * x[ix * xs + j];
      y[ix * ys + iw] = static_cast<float>(s);
    }
}

// Register tiles: kTileW x kTileX accumulators plus kTileX + 1 operands fit the register file
// (AVX-512: 24 + 7 of 32; with the leftover x rows in one pass rather than one by one, 4 x 6 ran
// F32 prefill about 1.2x faster than 4 x 4).
#if APR_ISA_LEVEL == 2
constexpr size_t kTileW = 4, kTileX = 6;
#elif APR_ISA_LEVEL == 1
constexpr size_t kTileW = 2, kTileX = 4;
#else
constexpr size_t kTileW = 2, kTileX = 2;
#endif

// The weight rows of the tile against NX x rows.
template <size_t NX>
void dot_rows(const float* w, size_t ws, size_t n_w, const float* x, size_t xs, float* y, size_t ys,
              size_t n) {
  size_t iw = 0;
  for (; iw + kTileW <= n_w; iw += kTileW)
    dot_micro<kTileW, NX>(w + iw * ws, ws, x, xs, y + iw, ys, n);
  for (; iw < n_w; ++iw) dot_micro<1, NX>(w + iw * ws, ws, x, xs, y + iw, ys, n);
}

// x rows kTileX at a time, then the 1 to kTileX - 1 left in one pass.
template <size_t... I>
void dot_rows_left(size_t nx, std::index_sequence<I...>, const float* w, size_t ws, size_t n_w,
                   const float* x, size_t xs, float* y, size_t ys, size_t n) {
  ((nx == I + 1 ? dot_rows<I + 1>(w, ws, n_w, x, xs, y, ys, n) : void()), ...);
}

void dot_tile(const float* w, size_t ws, size_t n_w, const float* x, size_t xs, size_t n_x,
              float* y, size_t ys, size_t n) {
  size_t ix = 0;
  for (; ix + kTileX <= n_x; ix += kTileX)
    dot_rows<kTileX>(w, ws, n_w, x + ix * xs, xs, y + ix * ys, ys, n);
  dot_rows_left(n_x - ix, std::make_index_sequence<kTileX - 1>{}, w, ws, n_w, x + ix * xs, xs,
                y + ix * ys, ys, n);
}

#include "isa_q8_impl.hpp"
#if defined(APR_ISA_VNNI)
#include "isa_packed_impl.hpp"
#endif

void axpy(float a, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// y[j] += p[0] * x[j] + p[1] * x[xs + j] + ..., one multiply-add per row in row order for
// every j (so the bits do not depend on how the columns are grouped): up to four column vectors
// stay in registers across all the rows, where axpy row by row would load and store y per row.
template <size_t NV>
void weighted_cols(const float* p, size_t n_rows, const float* x, size_t xs, float* y) {
#if APR_ISA_LEVEL >= 1
  Vec::reg acc[NV];
  for (size_t v = 0; v < NV; ++v) acc[v] = Vec::load(y + v * L);
  for (size_t i = 0; i < n_rows; ++i) {
    const Vec::reg pv = vset1(p[i]);
    for (size_t v = 0; v < NV; ++v) acc[v] = Vec::fma(pv, Vec::load(x + i * xs + v * L), acc[v]);
  }
  for (size_t v = 0; v < NV; ++v) Vec::store(y + v * L, acc[v]);
#else
  for (size_t v = 0; v < NV; ++v) {
    float acc = y[v];
    for (size_t i = 0; i < n_rows; ++i) acc += p[i] * x[i * xs + v];
    y[v] = acc;
  }
#endif
}

// s[i] = e^(s[i] - m) for scores s[i] <= m, returning their sum. Vectorised Cephes expf (a
// degree-6 polynomial on [-ln2/2, ln2/2] and the exponent set directly, ~1 ulp); arguments below
// -87 give e^-87 rather than 0 (they weigh nothing against the maximum's 1).
double exp_shifted(float* s, size_t n, float m) {
  size_t i = 0;
  double total = 0.0;
#if APR_ISA_LEVEL >= 1
  Vec::reg sum = Vec::zero();
  const Vec::reg vm = vset1(m), lo = vset1(-87.0f), log2e = vset1(1.44269504088896341f);
  const Vec::reg c1 = vset1(0.693359375f), c2 = vset1(-2.12194440e-4f);
  for (; i + L <= n; i += L) {
#if APR_ISA_LEVEL == 2
    const __m512 x = _mm512_max_ps(_mm512_sub_ps(Vec::load(s + i), vm), lo);
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 r = _mm512_fnmadd_ps(k, c2, _mm512_fnmadd_ps(k, c1, x));
    __m512 p = vset1(1.9875691500e-4f);
    p = Vec::fma(p, r, vset1(1.3981999507e-3f));
    p = Vec::fma(p, r, vset1(8.3334519073e-3f));
    p = Vec::fma(p, r, vset1(4.1665795894e-2f));
    p = Vec::fma(p, r, vset1(1.6666665459e-1f));
    p = Vec::fma(p, r, vset1(5.0000001201e-1f));
    p = Vec::fma(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, vset1(1.0f)));
    const __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
    const __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    _mm512_storeu_ps(s + i, y);
#else
    const __m256 x = _mm256_max_ps(_mm256_sub_ps(Vec::load(s + i), vm), lo);
    const __m256 k =
        _mm256_round_ps(_mm256_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_fnmadd_ps(k, c2, _mm256_fnmadd_ps(k, c1, x));
    __m256 p = vset1(1.9875691500e-4f);
    p = Vec::fma(p, r, vset1(1.3981999507e-3f));
    p = Vec::fma(p, r, vset1(8.3334519073e-3f));
    p = Vec::fma(p, r, vset1(4.1665795894e-2f));
    p = Vec::fma(p, r, vset1(1.6666665459e-1f));
    p = Vec::fma(p, r, vset1(5.0000001201e-1f));
    p = Vec::fma(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, vset1(1.0f)));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    _mm256_storeu_ps(s + i, y);
#endif
    sum = Vec::add(sum, y);
  }
  total = Vec::hsum(sum);
#endif
  for (; i < n; ++i) {
    s[i] = __builtin_expf(s[i] - m);
    total += s[i];
  }
  return total;
}

void weighted_sum(const float* p, size_t n_rows, const float* x, size_t xs, float* y, size_t n) {
  size_t j = 0;
  for (; j + 4 * L <= n; j += 4 * L) weighted_cols<4>(p, n_rows, x + j, xs, y + j);
  for (; j + L <= n; j += L) weighted_cols<1>(p, n_rows, x + j, xs, y + j);
  for (; j < n; ++j) {
    float acc = y[j];
    for (size_t i = 0; i < n_rows; ++i) acc += p[i] * x[i * xs + j];
    y[j] = acc;
  }
}

}  // namespace

#if APR_ISA_LEVEL == 0
const IsaKernels kernels = {"scalar", decode_row, dot_row, dot_tile, dot,          dot_row_q8,
                            nullptr,  nullptr,    nullptr, axpy,     weighted_sum, exp_shifted};
#else
const IsaKernels* kernels() {
#if defined(APR_ISA_VNNI)
  static const IsaKernels k = {
      APR_ISA_NAME,   decode_row,      dot_row,           dot_tile, dot,          dot_row_q8,
      packed_gemm_q8, packed_gemm_q16, quantize_q16_simd, axpy,     weighted_sum, exp_shifted};
#else
  static const IsaKernels k = {APR_ISA_NAME, decode_row, dot_row,      dot_tile,
                               dot,          dot_row_q8, nullptr,      nullptr,
                               nullptr,      axpy,       weighted_sum, exp_shifted};
#endif
  return &k;
}
#endif

}  // namespace apr_cpu::APR_ISA_NS
