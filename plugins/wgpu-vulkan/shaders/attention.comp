// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// Causal grouped-query attention for one (head, query row) per workgroup, over the cache in
// tiles of 64 keys with a running max and sum (one pass, no score buffer). A sliding window
// narrows the visible keys to the last `window`; a soft-cap maps each scaled score s to
// softcap * tanh(s / softcap) before the softmax. When asked, the (soft-capped) scores and the
// final softmax are also written to the trace scratch, masked entries 0.
#include "common.glsl"

layout(local_size_x = 64) in;
const uint TILE = 64u;
const uint MAX_HEAD_DIM = 256u;
const uint DIMS_PER_THREAD = MAX_HEAD_DIM / TILE;

layout(std430, binding = 0) readonly buffer Query { float Q[]; };
layout(std430, binding = 1) readonly buffer KeyCache { float K[]; };
layout(std430, binding = 2) readonly buffer ValueCache { float V[]; };
layout(std430, binding = 3) writeonly buffer Output { float O[]; };
layout(std430, binding = 4) buffer Trace { float S[]; };  // scores, then softmax

layout(push_constant) uniform Params {
  uint q_off;
  uint q_stride;
  uint n_rows;
  uint pos0;
  uint n_heads;
  uint group;  // query heads per KV head
  uint head_dim;
  uint kv_dim;
  uint k_off;
  uint v_off;
  uint o_off;
  float scale;
  uint emit;
  uint s_off;
  uint n_kv;  // pos0 + n_rows: the width of the traced score rows
  uint window;    // keys a row sees, itself included; 0 = all earlier ones
  float softcap;  // 0 = none
} p;

shared float q_s[MAX_HEAD_DIM];
shared float p_s[TILE];
shared float red[TILE];

float reduce_max(float v, uint t) {
  red[t] = v;
  barrier();
  for (uint w = TILE / 2u; w > 0u; w >>= 1) {
    if (t < w) red[t] = max(red[t], red[t + w]);
    barrier();
  }
  float m = red[0];
  barrier();
  return m;
}

float reduce_sum(float v, uint t) {
  red[t] = v;
  barrier();
  for (uint w = TILE / 2u; w > 0u; w >>= 1) {
    if (t < w) red[t] += red[t + w];
    barrier();
  }
  float s = red[0];
  barrier();
  return s;
}

// The scaled score of one key, soft-capped when asked.
float score(float dot_qk) {
  float s = p.scale * dot_qk;
  return p.softcap > 0.0 ? p.softcap * stable_tanh(s / p.softcap) : s;
}

void main() {
  uint h = gl_WorkGroupID.x;
  uint r = gl_WorkGroupID.y;
  uint t = gl_LocalInvocationID.x;
  uint g = h / p.group;
  uint n_visible = p.pos0 + r + 1u;  // keys [first_visible, n_visible) are seen
  uint first_visible = p.window != 0u && n_visible > p.window ? n_visible - p.window : 0u;
  uint q_base = p.q_off + r * p.q_stride + h * p.head_dim;
  for (uint d = t; d < p.head_dim; d += TILE) q_s[d] = Q[q_base + d];
  barrier();

  uint trace_row = (h * p.n_rows + r) * p.n_kv;
  uint softmax_base = p.s_off + p.n_heads * p.n_rows * p.n_kv;
  float running_max = uintBitsToFloat(0xFF800000u);  // -inf
  float running_sum = 0.0;
  float acc[DIMS_PER_THREAD];
  for (uint j = 0u; j < DIMS_PER_THREAD; ++j) acc[j] = 0.0;

  for (uint tile = first_visible; tile < n_visible; tile += TILE) {
    uint key = tile + t;
    float s = uintBitsToFloat(0xFF800000u);
    if (key < n_visible) {
      uint k_base = p.k_off + key * p.kv_dim + g * p.head_dim;
      float dot_qk = 0.0;
      for (uint d = 0u; d < p.head_dim; ++d) dot_qk += q_s[d] * K[k_base + d];
      s = score(dot_qk);
      if (p.emit != 0u) S[p.s_off + trace_row + key] = s;
    }
    float new_max = max(running_max, reduce_max(s, t));
    float e = key < n_visible ? exp(s - new_max) : 0.0;
    p_s[t] = e;
    float tile_sum = reduce_sum(e, t);  // its barriers also publish p_s
    float rescale = exp(running_max - new_max);
    running_sum = running_sum * rescale + tile_sum;
    uint n_in_tile = min(TILE, n_visible - tile);
    for (uint j = 0u; j < DIMS_PER_THREAD; ++j) {
      uint d = t + j * TILE;
      if (d < p.head_dim) {
        float a = 0.0;
        uint v_base = p.v_off + tile * p.kv_dim + g * p.head_dim + d;
        for (uint u = 0u; u < n_in_tile; ++u) a += p_s[u] * V[v_base + u * p.kv_dim];
        acc[j] = acc[j] * rescale + a;
      }
    }
    running_max = new_max;
    barrier();  // p_s is rewritten by the next tile
  }

  uint o_base = p.o_off + (r * p.n_heads + h) * p.head_dim;
  for (uint j = 0u; j < DIMS_PER_THREAD; ++j) {
    uint d = t + j * TILE;
    if (d < p.head_dim) O[o_base + d] = acc[j] / running_sum;
  }

  if (p.emit != 0u) {
    // Each thread revisits exactly the keys it scored above (first_visible + t + 64 k), so it
    // reads its own writes with no barrier; counting from first_visible and wrapping around
    // covers the masked keys before the window too.
    for (uint i = t; i < p.n_kv; i += TILE) {
      uint key = (first_visible + i) % p.n_kv;
      float s = 0.0, a = 0.0;
      if (key >= first_visible && key < n_visible) {
        s = S[p.s_off + trace_row + key];
        a = exp(s - running_max) / running_sum;
      }
      S[p.s_off + trace_row + key] = s;
      S[softmax_base + trace_row + key] = a;
    }
  }
}
