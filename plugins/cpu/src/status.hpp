// Failure reporting across the C boundary: kernels throw Failure, the API wrappers turn it into a
// status code and a thread-local message.
#pragma once

#include <apr/plugin.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace apr_cpu {

class Failure : public std::runtime_error {
 public:
  Failure(apr_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  apr_status status() const { return status_; }

 private:
  apr_status status_;
};

[[noreturn]] inline void fail(apr_status status, const std::string& message) {
  throw Failure(status, message);
}
[[noreturn]] inline void invalid(const std::string& message) {
  throw Failure(APR_ERR_INVALID_ARGUMENT, message);
}

// Decimal text of an integer. Used instead of std::to_string, whose digit table would be exported
// from the plugin as a GNU unique symbol (and would pin the library in memory).
template <typename T>
std::string num(T value) {
  static_assert(std::is_integral_v<T>);
  char text[32];
  if constexpr (std::is_signed_v<T>)
    std::snprintf(text, sizeof text, "%lld", static_cast<long long>(value));
  else
    std::snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(value));
  return text;
}

void set_last_error(const std::string& message);
const char* last_error();

// Runs body, mapping every exception to a status; exceptions never leave the plugin.
template <typename Body>
apr_status guarded(const char* call, Body&& body) noexcept {
  try {
    body();
    return APR_OK;
  } catch (const Failure& f) {
    set_last_error(std::string(call) + ": " + f.what());
    return f.status();
  } catch (const std::bad_alloc&) {
    set_last_error(std::string(call) + ": out of host memory");
    return APR_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(std::string(call) + ": internal error: " + e.what());
    return APR_ERR_INTERNAL;
  } catch (...) {
    set_last_error(std::string(call) + ": internal error");
    return APR_ERR_INTERNAL;
  }
}

}  // namespace apr_cpu
