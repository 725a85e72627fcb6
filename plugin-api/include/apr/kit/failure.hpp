// SPDX-License-Identifier: MIT
// Errors in a C++ plugin: throw apr_sdk::Failure (fail, invalid, require) anywhere inside a call;
// guarded() turns it into an apr_status and the per-thread message error_message() returns.
// Nothing thrown ever crosses the C boundary.
#pragma once

#include <apr/plugin.h>

#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <type_traits>

namespace apr_sdk {

class Failure : public std::exception {
 public:
  Failure(apr_status status, std::string message) : status_(status), message_(std::move(message)) {}
  apr_status status() const noexcept { return status_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  apr_status status_;
  std::string message_;
};

[[noreturn]] inline void fail(apr_status status, const std::string& message) {
  throw Failure(status, message);
}
[[noreturn]] inline void invalid(const std::string& message) {
  throw Failure(APR_ERR_INVALID_ARGUMENT, message);
}
inline void require(bool condition, apr_status status, const std::string& message) {
  if (!condition) fail(status, message);
}

// Decimal text of an integer. std::to_string would do, but its digit table is a GNU unique
// symbol; snprintf keeps the plugin free of them.
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

// The message of the last failed call on this thread, for apr_plugin_api.error_message.
inline std::string& last_error_storage() {
  static thread_local std::string message = "no error";
  return message;
}
inline void set_last_error(const std::string& message) noexcept {
  try {
    last_error_storage() = message;
  } catch (...) {
    // Keeping the previous message is better than throwing out of an error path.
  }
}
inline const char* last_error() noexcept {
  return last_error_storage().c_str();
}

// A backend's own exception types (a GPU API's error classes, say) mapped to a status: return
// nullopt for exceptions it does not know. The default knows none.
using ExceptionClassifier = std::optional<apr_status> (*)(const std::exception&);

// Runs body(); every exception becomes a status and "<call>: <message>".
template <typename Body>
apr_status guarded(const char* call, Body&& body, ExceptionClassifier classify = nullptr) noexcept {
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
    std::optional<apr_status> status;
    if (classify) status = classify(e);
    if (status) {
      set_last_error(std::string(call) + ": " + e.what());
      return *status;
    }
    set_last_error(std::string(call) + ": internal error: " + e.what());
    return APR_ERR_INTERNAL;
  } catch (...) {
    set_last_error(std::string(call) + ": internal error");
    return APR_ERR_INTERNAL;
  }
}

}  // namespace apr_sdk
