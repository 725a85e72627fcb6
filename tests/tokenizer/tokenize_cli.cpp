// SPDX-License-Identifier: MIT
// Test helper: tokenizes texts with the vocabulary of a GGUF file.
//
//   tokenize_cli MODEL.gguf [--no-add-special] [--no-parse-special]
//
// Each stdin line is one text, hex-encoded (so texts may hold newlines and invalid UTF-8).
// Each stdout line is {"ids": [...], "decoded": "<hex of decode(ids)>"}. A bad model file gives
// its one-line error on stderr and exit status 2.
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "common/hex_text.hpp"
#include "gguf/gguf_file.hpp"
#include "tokenizer/tokenizer.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: tokenize_cli MODEL.gguf [--no-add-special] [--no-parse-special]\n";
    return 2;
  }
  bool add_special = true, parse_special = true;
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--no-add-special") {
      add_special = false;
    } else if (arg == "--no-parse-special") {
      parse_special = false;
    } else {
      std::cerr << "tokenize_cli: unknown option " << arg << "\n";
      return 2;
    }
  }
  try {
    const auto file = apr::gguf::File::open(argv[1]);
    const auto tokenizer = apr::Tokenizer::from_gguf(*file);
    std::string line, text;
    while (std::getline(std::cin, line)) {
      if (!apr_test::from_hex(line, text)) {
        std::cerr << "tokenize_cli: input line is not hex\n";
        return 2;
      }
      const std::vector<int32_t> ids = tokenizer->encode(text, add_special, parse_special);
      std::string json = "{\"ids\": [";
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) json += ", ";
        json += std::to_string(ids[i]);
      }
      json += "], \"decoded\": \"" + apr_test::to_hex(tokenizer->decode(ids)) + "\"}\n";
      std::cout << json;
    }
    std::cout.flush();
  } catch (const apr::Error& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  return 0;
}
