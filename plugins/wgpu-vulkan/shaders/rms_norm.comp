// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// out[r][c] = x[r][c] * (1 / sqrt(mean(x[r]^2) + eps)) * w[c]; one workgroup per row.
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
  uint n_cols;
  float eps;
} p;

shared float partial[256];

void main() {
  uint r = linear_group_index();
  uint t = gl_LocalInvocationID.x;
  uint xb = p.x_off + r * p.n_cols;
  float acc = 0.0;
  for (uint c = t; c < p.n_cols; c += 256u) {
    float v = X[xb + c];
    acc += v * v;
  }
  partial[t] = acc;
  barrier();
  for (uint width = 128u; width > 0u; width >>= 1) {
    if (t < width) partial[t] += partial[t + width];
    barrier();
  }
  float scale = 1.0 / sqrt(partial[0] / float(p.n_cols) + p.eps);
  uint yb = p.y_off + r * p.n_cols;
  for (uint c = t; c < p.n_cols; c += 256u) Y[yb + c] = X[xb + c] * scale * G[p.g_off + c];
}
