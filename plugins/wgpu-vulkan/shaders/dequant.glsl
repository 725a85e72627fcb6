// SPDX-License-Identifier: MIT
// Element decoding of every supported GGUF weight type, straight from the raw bytes.
//
// The weight is bound as a plain uint array and read byte by byte, so the kernels need neither
// the 8/16-bit storage features nor any alignment beyond 2 bytes of the block fields.
// Include after declaring `uint W[]` (the weight words) and defining WTYPE to the ggml type id.
// The formulas are those of GGUF-FACTS.md section 2; every product below is exact in f32.

uint wbyte(uint at) { return (W[at >> 2] >> ((at & 3u) << 3)) & 0xFFu; }

// `at` is even for every 16-bit field of every block layout.
uint wu16(uint at) { return (W[at >> 2] >> ((at & 2u) << 3)) & 0xFFFFu; }

float whalf(uint at) { return half_to_float(wu16(at)); }

int sext8(uint v) { return int(v << 24) >> 24; }

#if WTYPE == 0  // F32
const uint BLOCK_ELEMS = 1u;
const uint BLOCK_BYTES = 4u;
#elif WTYPE == 1 || WTYPE == 30  // F16, BF16
const uint BLOCK_ELEMS = 1u;
const uint BLOCK_BYTES = 2u;
#elif WTYPE == 2
const uint BLOCK_ELEMS = 32u;
const uint BLOCK_BYTES = 18u;
#elif WTYPE == 3
const uint BLOCK_ELEMS = 32u;
const uint BLOCK_BYTES = 20u;
#elif WTYPE == 6
const uint BLOCK_ELEMS = 32u;
const uint BLOCK_BYTES = 22u;
#elif WTYPE == 7
const uint BLOCK_ELEMS = 32u;
const uint BLOCK_BYTES = 24u;
#elif WTYPE == 8
const uint BLOCK_ELEMS = 32u;
const uint BLOCK_BYTES = 34u;
#elif WTYPE == 10
const uint BLOCK_ELEMS = 256u;
const uint BLOCK_BYTES = 84u;
#elif WTYPE == 11
const uint BLOCK_ELEMS = 256u;
const uint BLOCK_BYTES = 110u;
#elif WTYPE == 12
const uint BLOCK_ELEMS = 256u;
const uint BLOCK_BYTES = 144u;
#elif WTYPE == 13
const uint BLOCK_ELEMS = 256u;
const uint BLOCK_BYTES = 176u;
#elif WTYPE == 14
const uint BLOCK_ELEMS = 256u;
const uint BLOCK_BYTES = 210u;
#else
#error "unsupported WTYPE"
#endif

// Nibble n of a 32-element block: element e < 16 is the low nibble of qs[e], else the high
// nibble of qs[e - 16].
uint nibble32(uint qs, uint e) { return e < 16u ? wbyte(qs + e) & 15u : wbyte(qs + e - 16u) >> 4; }

uint qh_bit(uint qh, uint e) { return (wbyte(qh + (e >> 3)) >> (e & 7u)) & 1u; }

// Q4_K / Q5_K packed 6-bit scale and min of sub-block j.
void scale_min_k4(uint s, uint j, out float sc, out float mn) {
  if (j < 4u) {
    sc = float(wbyte(s + j) & 63u);
    mn = float(wbyte(s + j + 4u) & 63u);
  } else {
    sc = float((wbyte(s + j + 4u) & 15u) | ((wbyte(s + j - 4u) >> 6) << 4));
    mn = float((wbyte(s + j + 4u) >> 4) | ((wbyte(s + j) >> 6) << 4));
  }
}

// Element e (0 <= e < BLOCK_ELEMS) of the block starting at byte b.
float dequant_element(uint b, uint e) {
#if WTYPE == 0
  return uintBitsToFloat(W[b >> 2]);
#elif WTYPE == 1
  return whalf(b);
#elif WTYPE == 30
  return uintBitsToFloat(wu16(b) << 16);
#elif WTYPE == 2
  return (float(nibble32(b + 2u, e)) - 8.0) * whalf(b);
#elif WTYPE == 3
  return float(nibble32(b + 4u, e)) * whalf(b) + whalf(b + 2u);
#elif WTYPE == 6
  uint q = nibble32(b + 6u, e) | (qh_bit(b + 2u, e) << 4);
  return (float(q) - 16.0) * whalf(b);
#elif WTYPE == 7
  uint q = nibble32(b + 8u, e) | (qh_bit(b + 4u, e) << 4);
  return float(q) * whalf(b) + whalf(b + 2u);
#elif WTYPE == 8
  return float(sext8(wbyte(b + 2u + e))) * whalf(b);
#elif WTYPE == 10
  uint h = e >> 7, r = e & 127u, s = r >> 5, l = r & 31u;
  uint q = (wbyte(b + 16u + 32u * h + l) >> (2u * s)) & 3u;
  uint sm = wbyte(b + (e >> 4));
  float d = whalf(b + 80u), dmin = whalf(b + 82u);
  return d * float(sm & 15u) * float(q) - dmin * float(sm >> 4);
#elif WTYPE == 11
  uint h = e >> 7, r = e & 127u, s = r >> 5, l = r & 31u;
  int lo = int((wbyte(b + 32u + 32u * h + l) >> (2u * s)) & 3u);
  uint hb = (wbyte(b + (e & 31u)) >> (e >> 5)) & 1u;
  int q = lo - (hb != 0u ? 0 : 4);
  uint i = e >> 4;
  uint low4 = i < 8u ? wbyte(b + 96u + i) & 15u : wbyte(b + 96u + i - 8u) >> 4;
  uint high2 = (wbyte(b + 96u + 8u + (i & 3u)) >> (2u * (i >> 2))) & 3u;
  int sc = int(low4 | (high2 << 4)) - 32;
  return whalf(b + 108u) * float(sc) * float(q);
#elif WTYPE == 12
  float sc, mn;
  scale_min_k4(b + 4u, e >> 5, sc, mn);
  uint c = e >> 6, r = e & 63u;
  uint byte_ = wbyte(b + 16u + 32u * c + (r & 31u));
  uint q = r < 32u ? byte_ & 15u : byte_ >> 4;
  return whalf(b) * sc * float(q) - whalf(b + 2u) * mn;
#elif WTYPE == 13
  float sc, mn;
  scale_min_k4(b + 4u, e >> 5, sc, mn);
  uint c = e >> 6, r = e & 63u;
  uint byte_ = wbyte(b + 48u + 32u * c + (r & 31u));
  uint q = (r < 32u ? byte_ & 15u : byte_ >> 4) + 16u * ((wbyte(b + 16u + (e & 31u)) >> (e >> 5)) & 1u);
  return whalf(b) * sc * float(q) - whalf(b + 2u) * mn;
#elif WTYPE == 14
  uint h = e >> 7, r = e & 127u, k = r >> 5, l = r & 31u;
  uint ql = wbyte(b + 64u * h + l + 32u * (k & 1u));
  uint low4 = k < 2u ? ql & 15u : ql >> 4;
  uint high2 = (wbyte(b + 128u + 32u * h + l) >> (2u * k)) & 3u;
  int q = int(low4 | (high2 << 4)) - 32;
  return whalf(b + 208u) * float(sext8(wbyte(b + 192u + (e >> 4)))) * float(q);
#endif
}

// Element c of a row whose first block starts at byte row_base.
float dequant_row_element(uint row_base, uint c) {
  return dequant_element(row_base + (c / BLOCK_ELEMS) * BLOCK_BYTES, c % BLOCK_ELEMS);
}
