// SPDX-License-Identifier: MIT
// GGUF reader, model loader and tokenizer: the input is a GGUF file. Model::load runs the whole
// chain (header, metadata, tensor table, hyper-parameters, tensor shapes, vocabulary); the
// reader and the tokenizer are also driven on their own, so a file the model loader refuses
// early still reaches the metadata accessors and the tokenizer.
#include <array>
#include <string_view>

#include "common/error.hpp"
#include "fuzz_support.hpp"
#include "gguf/gguf_file.hpp"
#include "model/model.hpp"
#include "tokenizer/tokenizer.hpp"

namespace {

// Texts that reach every pre-tokenizer branch: letters, digits, punctuation, whitespace runs,
// contractions, non-ASCII, invalid UTF-8 and special-token look-alikes.
constexpr std::array<std::string_view, 5> kTexts = {
    "Hello world! It's 12345 times, isn't it?",
    "  \t\n\nleading blanks and trailing  ",
    "caf\xc3\xa9 \xe4\xbb\x8a\xe5\xa4\xa9 \xf0\x9f\x99\x82 \xff\xfe broken utf-8 \xc3",
    "<|im_start|>user\nhi<|im_end|><s></s><unk>",
    "",
};

void exercise(const apr::Tokenizer& tok) {
  for (auto text : kTexts) {
    auto ids = tok.encode(text, true, true);
    (void)tok.decode(ids, false);
    (void)tok.decode(ids, true);
  }
  const auto n = static_cast<int32_t>(tok.vocab_size());
  for (int32_t id : {-1, 0, 1, n / 2, n - 1, n, n + 1}) {
    (void)tok.token_to_piece(id, true);
    (void)tok.token_text(id);
    (void)tok.token_type(id);
    (void)tok.is_end_of_generation(id);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto path = apr::fuzz::scratch_path("gguf") += ".gguf";
  apr::fuzz::write_file(path, data, size);
  try {
    auto model = apr::Model::load(path);
    exercise(model->tokenizer());
  } catch (const apr::Error&) {
  }
  try {
    auto file = apr::gguf::File::open(path);
    (void)file->metadata_summary();
    for (const auto& t : file->tensors()) (void)apr::gguf::shape_string(t);
    auto tok = apr::Tokenizer::from_gguf(*file);
    exercise(*tok);
  } catch (const apr::Error&) {
  }
  return 0;
}
