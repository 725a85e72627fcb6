// SPDX-License-Identifier: MIT
// main() for Catch2 test programs that use apr_test::skip (test_skip.hpp): Catch's status when a
// test failed (never 77, which would read as a skip), 77 when a test skipped and none failed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "test_skip.hpp"

int main(int argc, char** argv) {
  const int failed = Catch::Session().run(argc, argv);
  if (failed != 0) return failed == apr_test::kSkipReturnCode ? 1 : failed;
  return apr_test::skip_recorded() ? apr_test::kSkipReturnCode : 0;
}
