// SPDX-License-Identifier: MIT
#include "tokenizer/vocab_from_gguf.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "gguf/gguf_file.hpp"
#include "tokenizer/tokenizer.hpp"

namespace apr {
namespace {

std::optional<int64_t> optional_id(const gguf::File& file, std::string_view key) {
  const std::optional<uint64_t> value = file.get_uint(key);
  if (!value) return std::nullopt;
  // Ids beyond int64 are out of range like any other too-large id: the default stays.
  return *value > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(*value);
}

VocabData read_vocab(const gguf::File& file) {
  VocabData data;
  const auto model = file.get_string("tokenizer.ggml.model");
  if (!model) throw Error("tokenizer.ggml.model: missing");
  data.model = std::string(*model);
  if (const auto pre = file.get_string("tokenizer.ggml.pre")) data.pre = std::string(*pre);
  if (const auto name = file.get_string("general.name")) data.name = std::string(*name);

  const auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens) throw Error("tokenizer.ggml.tokens: missing");
  data.tokens.assign(tokens->begin(), tokens->end());

  if (const auto scores = file.get_float_array("tokenizer.ggml.scores")) {
    data.scores.reserve(scores->size());
    for (double s : *scores) data.scores.push_back(static_cast<float>(s));
  }
  if (const auto types = file.get_int_array("tokenizer.ggml.token_type")) {
    data.types.reserve(types->size());
    for (size_t i = 0; i < types->size(); ++i) {
      const int64_t type = (*types)[i];
      // Unknown type values behave like "undefined" rather than being rejected.
      data.types.push_back(type >= kTokenUndefined && type <= kTokenByte
                               ? static_cast<int32_t>(type)
                               : static_cast<int32_t>(kTokenUndefined));
    }
  }
  if (const auto merges = file.get_string_array("tokenizer.ggml.merges")) {
    data.merges.assign(merges->begin(), merges->end());
  } else if (data.model == "gpt2") {
    throw Error("tokenizer.ggml.merges: missing (required by tokenizer model gpt2)");
  }

  data.bos_id = optional_id(file, "tokenizer.ggml.bos_token_id");
  data.eos_id = optional_id(file, "tokenizer.ggml.eos_token_id");
  data.unk_id = optional_id(file, "tokenizer.ggml.unknown_token_id");
  data.pad_id = optional_id(file, "tokenizer.ggml.padding_token_id");
  data.eot_id = optional_id(file, "tokenizer.ggml.eot_token_id");
  data.add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
  data.add_eos = file.get_bool("tokenizer.ggml.add_eos_token");
  data.add_space_prefix = file.get_bool("tokenizer.ggml.add_space_prefix");
  return data;
}

// The GGUF reader's own errors already start with the path; ours get it added.
[[noreturn]] void rethrow_with_path(const gguf::File& file, const Error& e) {
  const std::string prefix = file.path().string() + ": ";
  if (std::string_view(e.what()).starts_with(prefix)) throw e;
  throw Error(prefix + e.what());
}

}  // namespace

VocabData vocab_from_gguf(const gguf::File& file) {
  try {
    return read_vocab(file);
  } catch (const Error& e) {
    rethrow_with_path(file, e);
  }
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& file) {
  VocabData data = vocab_from_gguf(file);
  try {
    return from_vocab(std::move(data));
  } catch (const Error& e) {
    rethrow_with_path(file, e);
  }
}

}  // namespace apr
