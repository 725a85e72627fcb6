// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// out[c] = dequantized element c of one table row; one dispatch per token, the row bound alone.
#include "common.glsl"

const uint WORKGROUP_SIZE = 64u;
layout(local_size_x = WORKGROUP_SIZE) in;

layout(std430, binding = 0) readonly buffer Weight { uint W[]; };
layout(std430, binding = 1) writeonly buffer Output { float Y[]; };

layout(push_constant) uniform Params {
  uint w_off;  // bytes from the binding start to the row
  uint n_cols;
  uint y_off;
} p;

#include "dequant.glsl"

void main() {
  uint c = linear_invocation_index(WORKGROUP_SIZE);
  if (c >= p.n_cols) return;
  Y[p.y_off + c] = dequant_row_element(p.w_off, c);
}
