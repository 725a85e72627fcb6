// SPDX-License-Identifier: MIT
// Skipping a Catch2 test program whose precondition is missing (no device, a plugin that is not
// usable here). A test calls apr_test::skip(reason) and returns; the program's main
// (skip_main.cpp) then exits with 77, which CTest's SKIP_RETURN_CODE reports as skipped, but only
// when no test failed. The decision is the exit status, never a pattern in the output, so a
// failing run can never pass as a skip.
#pragma once

#include <cstdio>
#include <string>

namespace apr_test {

constexpr int kSkipReturnCode = 77;

inline bool& skip_recorded() {
  static bool skipped = false;
  return skipped;
}

inline void skip(const std::string& reason) {
  skip_recorded() = true;
  std::printf("SKIPPED: %s\n", reason.c_str());
}

}  // namespace apr_test
