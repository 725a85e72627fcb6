// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// out = x * (1 / sqrt(mean(x^2) + eps)) * w over each group of group_cols elements; a row of
// n_groups groups starts every row_stride elements (one group per row and row_stride = n_cols is
// the plain RMSNorm; n_groups heads is the per-head QK-norm). One workgroup per (row, group).
// out may alias x: every thread writes only the elements it read, after the reduction barrier.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Input { float X[]; };
layout(std430, binding = 1) readonly buffer Gain { float G[]; };
layout(std430, binding = 2) buffer Output { float Y[]; };

layout(push_constant) uniform Params {
  uint x_off;
  uint g_off;
  uint y_off;
  uint group_cols;  // elements normalised together, and entries of w
  float eps;
  uint row_stride;
  uint n_groups;    // groups per row
  uint n_work;      // rows x groups: grid_1d may launch a few workgroups more
} p;

shared float partial[256];

void main() {
  uint w = linear_group_index();
  if (w >= p.n_work) return;  // uniform across the workgroup, so no barrier is left waiting
  uint r = w / p.n_groups;
  uint group_start = r * p.row_stride + (w % p.n_groups) * p.group_cols;
  uint t = gl_LocalInvocationID.x;
  uint xb = p.x_off + group_start;
  float acc = 0.0;
  for (uint c = t; c < p.group_cols; c += 256u) {
    float v = X[xb + c];
    acc += v * v;
  }
  partial[t] = acc;
  barrier();
  for (uint width = 128u; width > 0u; width >>= 1) {
    if (t < width) partial[t] += partial[t + width];
    barrier();
  }
  float scale = 1.0 / sqrt(partial[0] / float(p.group_cols) + p.eps);
  uint yb = p.y_off + group_start;
  for (uint c = t; c < p.group_cols; c += 256u) Y[yb + c] = X[xb + c] * scale * G[p.g_off + c];
}
