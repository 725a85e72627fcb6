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
