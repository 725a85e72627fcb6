// The error type that carries an apr_status and a one-line message up to the C entry points.
#pragma once

#include <stdexcept>
#include <string>

#include "apr/plugin.h"

namespace apr_vk {

class PluginError : public std::runtime_error {
 public:
  PluginError(apr_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  apr_status status() const { return status_; }

 private:
  apr_status status_;
};

[[noreturn]] inline void fail(apr_status status, const std::string& message) {
  throw PluginError(status, message);
}

inline void require(bool condition, apr_status status, const std::string& message) {
  if (!condition) fail(status, message);
}

}  // namespace apr_vk
