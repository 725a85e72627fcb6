// SPDX-License-Identifier: MIT
#include "check.hpp"

#include <cstring>

namespace conformance {
namespace {

std::vector<std::string>& info_stack() {
  static std::vector<std::string> stack;
  return stack;
}
std::vector<std::string>& note_list() {
  static std::vector<std::string> list;
  return list;
}

}  // namespace

std::vector<CheckCase>& registry() {
  static std::vector<CheckCase> cases;
  return cases;
}

ScopedInfo::ScopedInfo(std::string message) {
  info_stack().push_back(std::move(message));
}
ScopedInfo::~ScopedInfo() {
  info_stack().pop_back();
}

void require_failed(const char* expr, const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  std::string message = std::string(slash ? slash + 1 : file) + ":" + std::to_string(line) +
                        ": REQUIRE(" + expr + ") failed";
  for (const std::string& info : info_stack()) message += "; " + info;
  throw CheckFailure{message};
}

void note(const std::string& message) {
  note_list().push_back(message);
}
const std::vector<std::string>& notes() {
  return note_list();
}
void clear_notes() {
  note_list().clear();
}

}  // namespace conformance
