// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// Rotary embedding in place. The per-(row, pair) cos/sin come precomputed from the host in
// double precision, so the only f32 roundings are those of the rotation itself.
#include "common.glsl"

const uint WORKGROUP_SIZE = 256u;
layout(local_size_x = WORKGROUP_SIZE) in;

layout(std430, binding = 0) buffer Data { float X[]; };
layout(std430, binding = 1) readonly buffer Table { float T[]; };  // [row][pair] {cos, sin}

layout(push_constant) uniform Params {
  uint x_off;
  uint x_stride;
  uint n_rows;
  uint n_heads;
  uint head_dim;
  uint n_rot;
  uint half_mode;  // 0: pairs (2i, 2i+1); 1: pairs (i, i + n_rot/2)
  uint t_off;
} p;

void main() {
  uint n_pairs = p.n_rot / 2u;
  uint idx = linear_invocation_index(WORKGROUP_SIZE);
  if (idx >= p.n_rows * p.n_heads * n_pairs) return;
  uint i = idx % n_pairs;
  uint h = (idx / n_pairs) % p.n_heads;
  uint r = idx / (n_pairs * p.n_heads);
  uint base = p.x_off + r * p.x_stride + h * p.head_dim;
  uint i0 = p.half_mode != 0u ? i : 2u * i;
  uint i1 = p.half_mode != 0u ? i + n_pairs : 2u * i + 1u;
  float c = T[p.t_off + 2u * (r * n_pairs + i)];
  float s = T[p.t_off + 2u * (r * n_pairs + i) + 1u];
  float x0 = X[base + i0];
  float x1 = X[base + i1];
  X[base + i0] = x0 * c - x1 * s;
  X[base + i1] = x0 * s + x1 * c;
}
