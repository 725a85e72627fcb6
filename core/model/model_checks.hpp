// SPDX-License-Identifier: MIT
// Checks a model's values, not just its structure, when it is loaded: numbers a file can hold
// but no working model has (NaN or infinite weights, a vocab_size key that disagrees with the
// tokenizer, special token ids beyond the vocabulary, NaN token scores). Each finding is one line
// naming the file and what is wrong; it refuses the model unless the caller forces the load, in
// which case it is only reported.
#pragma once

#include <functional>
#include <string>

namespace apr {

class Model;

struct LoadOptions {
  // Load anyway: findings become warnings (`--force` on the command line).
  bool force = false;
  // Where warnings go; unset means stderr as "apr: warning: ...".
  std::function<void(const std::string&)> warn;
};

// Throws apr::Error with the first finding unless options.force; with force, reports every
// finding through options.warn. Weights are sampled, not scanned: every 1-D tensor (norms,
// biases) whole, and a few rows of every matrix (the first, the last and some between), which
// catches all-NaN files and NaN blocks at a cost independent of the model size.
void check_model_values(const Model& model, const LoadOptions& options);

}  // namespace apr
