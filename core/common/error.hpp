// SPDX-License-Identifier: MIT
// Error types shared by every part of the core.
#pragma once

#include <stdexcept>
#include <string>

namespace apr {

// Something the user handed us is wrong (a model file, an argument, a trace file, a plugin).
// The message is one line that says what is wrong and where; the CLI prints it and exits 2.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace apr
