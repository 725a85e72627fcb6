// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// out = silu(gate) * up; the silu values also go to the trace scratch when asked for.
// out may alias gate or up: each invocation reads its element before writing it.
#include "common.glsl"

const uint WORKGROUP_SIZE = 256u;
layout(local_size_x = WORKGROUP_SIZE) in;

layout(std430, binding = 0) readonly buffer Gate { float G[]; };
layout(std430, binding = 1) readonly buffer Up { float U[]; };
layout(std430, binding = 2) writeonly buffer Output { float Y[]; };
layout(std430, binding = 3) writeonly buffer Trace { float S[]; };

layout(push_constant) uniform Params {
  uint g_off;
  uint u_off;
  uint y_off;
  uint n;
  uint emit_silu;
  uint s_off;
} p;

void main() {
  uint i = linear_invocation_index(WORKGROUP_SIZE);
  if (i >= p.n) return;
  float g = G[p.g_off + i];
  float u = U[p.u_off + i];
  float silu = g / (1.0 + exp(-g));
  if (p.emit_silu != 0u) S[p.s_off + i] = silu;
  Y[p.y_off + i] = silu * u;
}
