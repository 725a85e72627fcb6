// SPDX-License-Identifier: MIT
#include "model/model_checks.hpp"

#include <cmath>
#include <iostream>
#include <optional>
#include <vector>

#include "common/error.hpp"
#include "gguf/gguf_file.hpp"
#include "model/model.hpp"
#include "quant/dequantize.hpp"

namespace apr {
namespace {

// Rows checked in every matrix besides the first and the last.
constexpr uint64_t kSampledRows = 6;

class Findings {
 public:
  Findings(const Model& m, const LoadOptions& o)
      : fname_(m.file().path().filename().string()), options_(o) {}

  void report(const std::string& what) {
    const std::string line = fname_ + ": " + what;
    if (!options_.force) throw Error(line + "; use --force to load it anyway");
    if (options_.warn)
      options_.warn(line);
    else
      std::cerr << "apr: warning: " << line << " (loading anyway: --force)\n";
  }

 private:
  std::string fname_;
  const LoadOptions& options_;
};

const char* nonfinite_name(float v) {
  return std::isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf";
}

// The first non-finite element of the sampled rows, as (flat index, value).
std::optional<std::pair<uint64_t, float>> first_nonfinite(const gguf::TensorInfo& t) {
  const uint64_t n0 = t.ne[0];
  const uint64_t rows = n0 ? t.n_elements / n0 : 0;
  if (!t.data || rows == 0 || t.nbytes % rows != 0) return std::nullopt;
  const uint64_t row_bytes = t.nbytes / rows;
  std::vector<uint64_t> picks;
  if (rows <= kSampledRows + 2) {
    for (uint64_t r = 0; r < rows; ++r) picks.push_back(r);
  } else {
    picks.push_back(0);
    for (uint64_t k = 1; k <= kSampledRows; ++k)
      picks.push_back(k * (rows - 1) / (kSampledRows + 1));
    picks.push_back(rows - 1);
  }
  std::vector<float> row(n0);
  for (uint64_t r : picks) {
    quant::dequantize_row(t.type, t.data + r * row_bytes, row.data(), n0);
    for (uint64_t i = 0; i < n0; ++i)
      if (!std::isfinite(row[i])) return std::make_pair(r * n0 + i, row[i]);
  }
  return std::nullopt;
}

void check_weights(const Model& m, Findings& findings) {
  std::vector<const gguf::TensorInfo*> tensors = {&m.token_embd(), &m.output_norm()};
  if (&m.output() != &m.token_embd()) tensors.push_back(&m.output());
  for (const gguf::TensorInfo* t : {m.rope_freqs(), m.rope_factors_short(), m.rope_factors_long()})
    if (t) tensors.push_back(t);
  for (const LayerTensors& l : m.layers())
    for (const gguf::TensorInfo* t : l.all()) tensors.push_back(t);
  for (const gguf::TensorInfo* t : tensors) {
    if (auto bad = first_nonfinite(*t))
      findings.report("tensor '" + t->name + "' holds " + nonfinite_name(bad->second) +
                      " at element " + std::to_string(bad->first) + " (weights must be finite)");
  }
}

void check_vocabulary(const Model& m, Findings& findings) {
  const gguf::File& f = m.file();
  const uint64_t n_vocab = m.tokenizer().vocab_size();
  const std::string key = m.config().arch_name + ".vocab_size";
  if (auto v = f.get_uint(key); v && *v != n_vocab)
    findings.report("metadata '" + key + "' is " + std::to_string(*v) +
                    " but tokenizer.ggml.tokens and token_embd.weight have " +
                    std::to_string(n_vocab) + " tokens");
  for (const char* id_key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                             "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                             "tokenizer.ggml.eot_token_id"}) {
    if (auto id = f.get_uint(id_key); id && *id >= n_vocab)
      findings.report("metadata '" + std::string(id_key) + "' is " + std::to_string(*id) +
                      ", beyond the vocabulary of " + std::to_string(n_vocab) + " tokens");
  }
  if (auto scores = f.get_float_array("tokenizer.ggml.scores")) {
    for (size_t i = 0; i < scores->size(); ++i)
      if (std::isnan((*scores)[i])) {
        findings.report("tokenizer.ggml.scores[" + std::to_string(i) + "] is NaN");
        break;
      }
  }
}

}  // namespace

void check_model_values(const Model& model, const LoadOptions& options) {
  Findings findings(model, options);
  check_vocabulary(model, findings);
  check_weights(model, findings);
}

}  // namespace apr
