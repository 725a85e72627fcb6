// SPDX-License-Identifier: MIT
#version 450
#extension GL_GOOGLE_include_directive : require
// out = act(gate) * up, act silu or the tanh form of GELU; the act values also go to the trace
// scratch when asked for. out may alias gate or up: each invocation reads its element before
// writing it.
#include "common.glsl"

const uint WORKGROUP_SIZE = 256u;
layout(local_size_x = WORKGROUP_SIZE) in;

const uint ACT_SILU = 0u;  // APR_ACT_SILU
// APR_ACT_GELU_TANH is the only other value the host passes.

layout(std430, binding = 0) readonly buffer Gate { float G[]; };
layout(std430, binding = 1) readonly buffer Up { float U[]; };
layout(std430, binding = 2) writeonly buffer Output { float Y[]; };
layout(std430, binding = 3) writeonly buffer Trace { float S[]; };

layout(push_constant) uniform Params {
  uint g_off;
  uint u_off;
  uint y_off;
  uint n;
  uint emit_act;
  uint s_off;
  uint activation;
} p;

float silu(float z) { return z / (1.0 + exp(-z)); }

// 0.5 z (1 + tanh(u)) with u = sqrt(2/pi) (z + 0.044715 z^3), written as z sigmoid(2u): the
// same value, without 1 + tanh(u) cancelling to nothing for negative z. The sigmoid takes
// e^-2|u| on both sides, so exp never overflows (u reaches +-inf for |z| beyond 1e13).
float gelu_tanh(float z) {
  float u = 0.7978845608028654 * (z + 0.044715 * z * z * z);
  float e = exp(-2.0 * abs(u));
  return z * (u >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
}

void main() {
  uint i = linear_invocation_index(WORKGROUP_SIZE);
  if (i >= p.n) return;
  float g = G[p.g_off + i];
  float u = U[p.u_off + i];
  float act = p.activation == ACT_SILU ? silu(g) : gelu_tanh(g);
  if (p.emit_act != 0u) S[p.s_off + i] = act;
  Y[p.y_off + i] = act * u;
}
