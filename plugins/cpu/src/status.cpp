#include "status.hpp"

namespace apr_cpu {

namespace {
thread_local std::string t_last_error = "no error";
}

void set_last_error(const std::string& message) {
  try {
    t_last_error = message;
  } catch (...) {
    // Keeping the previous message is better than throwing out of an error path.
  }
}

const char* last_error() {
  return t_last_error.c_str();
}

}  // namespace apr_cpu
