// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// y[r][o] = sum_i W[o][i] * x[r][i] (+ bias[o]) with W dequantized on the fly.
// One workgroup per (OUTS output features, group of ROWS activation rows); LANES threads share
// each output and walk strided slices of its weight row, so each weight element is decoded once
// for ROWS rows. The per-thread partial sums are then reduced pairwise. Several outputs per
// workgroup keep the barrier count per output low, which matters on CPU implementations.
#include "common.glsl"

layout(local_size_x = 64) in;
const uint ROWS = 4u;
const uint OUTS = 4u;
const uint LANES = 16u;  // OUTS * LANES = local_size_x

layout(std430, binding = 0) readonly buffer Weight { uint W[]; };
layout(std430, binding = 1) readonly buffer Input { float X[]; };
layout(std430, binding = 2) readonly buffer Bias { float B[]; };
layout(std430, binding = 3) writeonly buffer Output { float Y[]; };

layout(push_constant) uniform Params {
  uint w_off;      // bytes from the binding start to row 0 of this dispatch
  uint row_bytes;
  uint n_cols;
  uint n_out;      // output features in this dispatch
  uint o_begin;    // index of the first of them in y
  uint x_off;
  uint x_stride;
  uint n_rows;
  uint has_bias;
  uint b_off;
  uint y_off;
  uint y_stride;
} p;

#include "dequant.glsl"

shared float partial[ROWS][64];

void main() {
  uint t = gl_LocalInvocationID.x;
  uint lane = t % LANES;
  uint o = linear_group_index() * OUTS + t / LANES;
  uint r0 = gl_WorkGroupID.z * ROWS;
  bool has_output = o < p.n_out;  // idle threads still reach every barrier
  uint row_base = p.w_off + o * p.row_bytes;

  float acc[ROWS];
  for (uint k = 0u; k < ROWS; ++k) acc[k] = 0.0;
  for (uint c = lane; has_output && c < p.n_cols; c += LANES) {
    float w = dequant_row_element(row_base, c);
    for (uint k = 0u; k < ROWS; ++k) {
      if (r0 + k < p.n_rows) acc[k] += w * X[p.x_off + (r0 + k) * p.x_stride + c];
    }
  }
  for (uint k = 0u; k < ROWS; ++k) partial[k][t] = acc[k];
  barrier();
  for (uint width = LANES / 2u; width > 0u; width >>= 1) {
    if (lane < width) {
      for (uint k = 0u; k < ROWS; ++k) partial[k][t] += partial[k][t + width];
    }
    barrier();
  }
  if (has_output && lane < ROWS && r0 + lane < p.n_rows) {
    // Thread `lane` of each output writes activation row r0 + lane.
    float sum = partial[lane][t - lane];
    uint oo = p.o_begin + o;
    if (p.has_bias != 0u) sum += B[p.b_off + oo];
    Y[p.y_off + (r0 + lane) * p.y_stride + oo] = sum;
  }
}
