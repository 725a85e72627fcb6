// SPDX-License-Identifier: MIT
// The conformance suite's own small check framework: TEST_CASE, REQUIRE, INFO and WARN with the
// meaning they have in Catch2, so the checks read like ordinary tests, but no test framework is
// linked into `apr plugin-check`. A check is a function; REQUIRE throws CheckFailure carrying the
// failed expression, its place and every INFO in scope. runner.hpp runs checks in child processes.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace conformance {

struct CheckFailure {
  std::string message;
};
// Thrown when a check cannot run here (plugin unusable on this machine); reported as SKIP.
struct CheckSkipped {
  std::string reason;
};

using CheckFn = void (*)();
struct CheckCase {
  std::string name;
  std::string tags;  // "[matmul][determinism]"
  CheckFn fn;
};

std::vector<CheckCase>& registry();

struct Registrar {
  Registrar(CheckFn fn, const char* name, const char* tags = "") {
    registry().push_back({name, tags, fn});
  }
};

// Context for the next failure message, valid while the object lives (Catch2's INFO).
class ScopedInfo {
 public:
  explicit ScopedInfo(std::string message);
  ~ScopedInfo();
  ScopedInfo(const ScopedInfo&) = delete;
  ScopedInfo& operator=(const ScopedInfo&) = delete;
};

[[noreturn]] void require_failed(const char* expr, const char* file, int line);
// A note shown after the check's result line (e.g. the weight types a plugin does not claim).
void note(const std::string& message);
const std::vector<std::string>& notes();
void clear_notes();

}  // namespace conformance

#define CONFORMANCE_CAT2(a, b) a##b
#define CONFORMANCE_CAT(a, b) CONFORMANCE_CAT2(a, b)

#define CONFORMANCE_CASE(id, ...)                                                          \
  static void id();                                                                        \
  static const ::conformance::Registrar CONFORMANCE_CAT(id, _registrar)(&id, __VA_ARGS__); \
  static void id()
#define TEST_CASE(...) CONFORMANCE_CASE(CONFORMANCE_CAT(conformance_check_, __LINE__), __VA_ARGS__)

#define REQUIRE(...)                                                                     \
  do {                                                                                   \
    if (!(__VA_ARGS__)) ::conformance::require_failed(#__VA_ARGS__, __FILE__, __LINE__); \
  } while (0)

#define INFO(msg)                                                                    \
  const ::conformance::ScopedInfo CONFORMANCE_CAT(conformance_info_, __LINE__)([&] { \
    std::ostringstream conformance_os_;                                              \
    conformance_os_ << msg;                                                          \
    return conformance_os_.str();                                                    \
  }())

#define WARN(msg)                               \
  do {                                          \
    std::ostringstream conformance_os_;         \
    conformance_os_ << msg;                     \
    ::conformance::note(conformance_os_.str()); \
  } while (0)
