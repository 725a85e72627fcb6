// SPDX-License-Identifier: MIT
// Helpers shared by every kernel. Included after the #version line.

// Large 1-D problems are dispatched as a 2-D grid of workgroups because one grid dimension may
// hold as few as 65535 groups; this folds the grid back into one linear index.
uint linear_group_index() { return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x; }

// The workgroup size is passed in rather than read from gl_WorkGroupSize, which evaluates to 1
// on lavapipe (Mesa 22.3) and silently drops most of every workgroup's work.
uint linear_invocation_index(uint workgroup_size) {
  return linear_group_index() * workgroup_size + gl_LocalInvocationID.x;
}

// IEEE binary16 to binary32, exactly, including subnormals, infinities and NaN. Done by hand
// rather than with unpackHalf2x16 because drivers may flush half subnormals to zero.
float half_to_float(uint h) {
  uint sign = (h >> 15) & 1u;
  uint exponent = (h >> 10) & 31u;
  uint mantissa = h & 1023u;
  float magnitude;
  if (exponent == 0u) {
    magnitude = float(mantissa) * 5.9604644775390625e-8;  // 2^-24, exact scaling
  } else if (exponent == 31u) {
    magnitude = uintBitsToFloat(0x7F800000u | (mantissa << 13));
  } else {
    magnitude = uintBitsToFloat(((exponent + 112u) << 23) | (mantissa << 13));
  }
  return sign != 0u ? -magnitude : magnitude;
}

// tanh(x) in a form that is accurate everywhere. The built-in is often lowered to
// (e^2x - 1) / (e^2x + 1), which overflows to inf / inf = NaN for large |x| on some drivers and
// loses most digits near 0 to the subtraction. Here exp only ever sees -2|x| (no overflow, and
// +-inf gives +-1), and below |x| = 1/4 the Taylor series to x^9 is exact to f32 (next term
// < 1e-8 relative), where 1 - e^-2|x| would cancel.
float stable_tanh(float x) {
  float a = abs(x);
  if (a < 0.25) {
    float x2 = x * x;
    return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0 +
                                                                  x2 * (62.0 / 2835.0)))));
  }
  float e = exp(-2.0 * a);
  float t = (1.0 - e) / (1.0 + e);
  return x < 0.0 ? -t : t;
}
