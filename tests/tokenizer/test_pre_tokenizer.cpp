// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "tokenizer/pre_tokenizer.hpp"

using namespace apr;
using Pieces = std::vector<std::string>;

static Pieces split(const std::string& text, PreTokenizer kind) {
  Pieces out;
  for (auto piece : pre_tokenize(text, kind)) out.emplace_back(piece);
  return out;
}

TEST_CASE("qwen2 pre-tokenizer", "[tokenizer][pre]") {
  const auto q = PreTokenizer::kQwen2;
  CHECK(split("Hello world", q) == Pieces{"Hello", " world"});
  CHECK(split("I'm 12345 ok", q) == Pieces{"I", "'m", " ", "1", "2", "3", "4", "5", " ok"});
  CHECK(split("YOU'RE", q) == Pieces{"YOU", "'RE"});
  CHECK(split("x  \n\n  y", q) == Pieces{"x", "  \n\n", " ", " y"});
  CHECK(split("Hi!!\n\nthere", q) == Pieces{"Hi", "!!\n\n", "there"});
  CHECK(split("a\tb  ", q) == Pieces{"a", "\tb", "  "});
  CHECK(split("h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xD9\xA1\xD9\xA2", q) ==
        Pieces{"h\xC3\xA9llo", " \xE4\xB8\x96\xE7\x95\x8C", " ", "\xD9\xA1", "\xD9\xA2"});
  CHECK(split("a\xFF"
              "b",
              q) == Pieces{"a",
                           "\xFF"
                           "b"});
  CHECK(split("cafe\xCC\x81s", q) == Pieces{"cafe", "\xCC\x81s"});
  CHECK(split("", q).empty());
}

TEST_CASE("llama-bpe pre-tokenizer groups up to three digits", "[tokenizer][pre]") {
  const auto l = PreTokenizer::kLlama3;
  CHECK(split("I'm 12345 ok", l) == Pieces{"I", "'m", " ", "123", "45", " ok"});
  CHECK(split("x=1;\r\n", l) == Pieces{"x", "=", "1", ";\r\n"});
}

TEST_CASE("gpt-2 pre-tokenizer", "[tokenizer][pre]") {
  const auto g = PreTokenizer::kGpt2;
  CHECK(split("Hello, world! 1234567", g) == Pieces{"Hello", ",", " world", "!", " 1234567"});
  CHECK(split("YOU'RE you're", g) == Pieces{"YOU", "'", "RE", " you", "'re"});
  CHECK(split("a   b", g) == Pieces{"a", "  ", " b"});
  CHECK(split("a \n", g) == Pieces{"a", " \n"});
}

TEST_CASE("default pre-tokenizer chains llama.cpp's four regexes", "[tokenizer][pre]") {
  const auto d = PreTokenizer::kDefault;
  CHECK(split("Hello, world! 1234567", d) ==
        Pieces{"Hello", ",", " world", "!", " ", "123", "456", "7"});
  CHECK(split("a+=b", d) == Pieces{"a", "+=", "b"});
}

TEST_CASE("pre-tokenizer names", "[tokenizer][pre]") {
  CHECK(pre_tokenizer_from_name("") == PreTokenizer::kDefault);
  CHECK(pre_tokenizer_from_name("default") == PreTokenizer::kDefault);
  CHECK(pre_tokenizer_from_name("gpt-2") == PreTokenizer::kGpt2);
  CHECK(pre_tokenizer_from_name("llama-bpe") == PreTokenizer::kLlama3);
  CHECK(pre_tokenizer_from_name("qwen2") == PreTokenizer::kQwen2);
  CHECK(pre_tokenizer_from_name("smollm") == PreTokenizer::kDigitsThenGpt2);
  CHECK(pre_tokenizer_from_name("stablelm2") == PreTokenizer::kQwen2);
  CHECK(pre_tokenizer_from_name("olmo") == PreTokenizer::kGpt2);
  CHECK(pre_tokenizer_from_name("tekken") == PreTokenizer::kTekken);
  CHECK_THROWS_WITH(pre_tokenizer_from_name("chameleon"), Catch::Contains("'chameleon'"));
}

// Splits llama.cpp gives (tests/tokenizer/fixtures/tekken-split.json has many more): its regex
// runs on text where every non-ASCII letter counts as upper and lower case at once and
// combining marks are no letters.
TEST_CASE("tekken pre-tokenizer splits as llama.cpp's regex does", "[tokenizer][pre]") {
  using V = std::vector<std::string_view>;
  const auto tekken = [](std::string_view text) {
    return pre_tokenize(text, PreTokenizer::kTekken);
  };
  CHECK(tekken("HTTPServer XMLHttpRequest iOS McDonald's") ==
        V{"HTTPServer", " XMLHttp", "Request", " i", "OS", " Mc", "Donald", "'s"});
  // U+00C0 (A with grave) is both cases there, so "ÀB" ends in a lower-case run: À, then B.
  const std::string a_grave = "\xC3\x80", text = a_grave + "B a" + a_grave + "B ABCdef";
  const std::string a_a_grave = " a" + a_grave;
  CHECK(tekken(text) == V{a_grave, "B", a_a_grave, "B", " ABCdef"});
  // e + COMBINING ACUTE ACCENT: the mark starts a piece of its own.
  CHECK(tekken("e\xCC\x81te") == V{"e", "\xCC\x81te"});
  CHECK(tekken("12 x/y ...\n/ !?\n\n/x") == V{"1", "2", " x", "/y", " ...\n/", " !?\n\n/", "x"});
  CHECK(tekken("\t\t  x\n \n  y\r\n\r\nz  ") ==
        V{"\t\t ", " x", "\n \n", " ", " y", "\r\n\r\n", "z", "  "});
  CHECK(tekken("don't") == V{"don", "'t"});
}

TEST_CASE("smollm-style pre-tokenizer isolates every digit before the gpt-2 split",
          "[tokenizer][pre]") {
  const auto pieces = pre_tokenize("abc 123 x's", PreTokenizer::kDigitsThenGpt2);
  const std::vector<std::string_view> want = {"abc", " ", "1", "2", "3", " x", "'s"};
  CHECK(pieces == want);
  // The plain gpt-2 regex keeps the number whole.
  const std::vector<std::string_view> gpt2 = {"abc", " 123", " x", "'s"};
  CHECK(pre_tokenize("abc 123 x's", PreTokenizer::kGpt2) == gpt2);
}
