// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// out[i] = alpha * x[i] (scale) or alpha * tanh(x[i] / alpha) (soft-cap); out may alias x (same
// element per invocation).
#include "common.glsl"

const uint WORKGROUP_SIZE = 256u;
layout(local_size_x = WORKGROUP_SIZE) in;

const uint OP_SCALE = 0u;  // APR_UNARY_SCALE
// APR_UNARY_SOFTCAP is the only other value the host passes.

layout(std430, binding = 0) readonly buffer Input { float X[]; };
layout(std430, binding = 1) writeonly buffer Output { float Y[]; };

layout(push_constant) uniform Params {
  uint x_off;
  uint y_off;
  uint n;
  uint op;
  float alpha;
} p;

void main() {
  uint i = linear_invocation_index(WORKGROUP_SIZE);
  if (i >= p.n) return;
  float x = X[p.x_off + i];
  Y[p.y_off + i] = p.op == OP_SCALE ? p.alpha * x : p.alpha * stable_tanh(x / p.alpha);
}
