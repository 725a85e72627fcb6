// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// out[i] = a[i] + b[i % b_period]; out may alias a (same element per invocation).
#include "common.glsl"

const uint WORKGROUP_SIZE = 256u;
layout(local_size_x = WORKGROUP_SIZE) in;

layout(std430, binding = 0) readonly buffer A { float va[]; };
layout(std430, binding = 1) readonly buffer B { float vb[]; };
layout(std430, binding = 2) writeonly buffer Output { float vo[]; };

layout(push_constant) uniform Params {
  uint a_off;
  uint b_off;
  uint o_off;
  uint n;
  uint b_period;
} p;

void main() {
  uint i = linear_invocation_index(WORKGROUP_SIZE);
  if (i >= p.n) return;
  vo[p.o_off + i] = va[p.a_off + i] + vb[p.b_off + i % p.b_period];
}
