// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "test_vocabularies.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace apr;
using Ids = std::vector<int32_t>;

namespace {

// ids: 0..255 bytes, 256 he, 257 ll, 258 hell, 259 hello, 260 " w", 261 or, 262 " wor", 263 ld,
// 264 " world", 265 <|endoftext|>, 266 <|im_start|>, 267 <|im_end|>, 268 <tool>, 269 <x>,
// 270 <x>y
VocabData hello_vocab(const std::string& pre = "qwen2") {
  return test::byte_level_vocab({{"h", "e"},
                                 {"l", "l"},
                                 {"he", "ll"},
                                 {"hell", "o"},
                                 {" ", "w"},
                                 {"o", "r"},
                                 {" w", "or"},
                                 {"l", "d"},
                                 {" wor", "ld"}},
                                {{"<|endoftext|>", kTokenControl},
                                 {"<|im_start|>", kTokenControl},
                                 {"<|im_end|>", kTokenControl},
                                 {"<tool>", kTokenUserDefined},
                                 {"<x>", kTokenControl},
                                 {"<x>y", kTokenControl}},
                                pre);
}

Ids bytes_of(const std::string& s) {
  Ids out;
  for (unsigned char c : s) out.push_back(c);
  return out;
}

Ids concat(std::initializer_list<Ids> parts) {
  Ids out;
  for (const Ids& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

TEST_CASE("byte-level BPE gives known ids", "[tokenizer][bpe]") {
  auto tok = Tokenizer::from_vocab(hello_vocab());
  CHECK(tok->vocab_size() == 271);
  CHECK(tok->model() == "gpt2");
  CHECK(tok->pre() == "qwen2");
  CHECK(tok->encode("hello world") == Ids{259, 264});
  CHECK(tok->encode("hello, world!") == Ids{259, ',', 264, '!'});
  CHECK(tok->encode("he") == Ids{256});
  CHECK(tok->encode("") == Ids{});
  // Two equal-rank pairs overlap: the leftmost merges.
  CHECK(tok->encode("lll") == Ids{257, 'l'});
  // Merges stay inside pre-tokenizer pieces: "ld" is not formed across "l" and "\n".
  CHECK(tok->encode("hel\nd") == Ids{256, 'l', '\n', 'd'});
  // A space byte is token 32 (U+0120 in the alphabet).
  CHECK(tok->encode(" 1") == Ids{' ', '1'});
}

TEST_CASE("byte-level BPE applies the lowest rank first, not the leftmost pair",
          "[tokenizer][bpe]") {
  // ranks: (b c) = 0 -> 256, (a b) = 1 -> 257, (a bc) = 2 -> 258
  auto tok =
      Tokenizer::from_vocab(test::byte_level_vocab({{"b", "c"}, {"a", "b"}, {"a", "bc"}}, {}));
  CHECK(tok->encode("abc") == Ids{258});
  CHECK(tok->encode("abd") == Ids{257, 'd'});
  // Without (a bc) the word stays split as the rank order left it.
  auto tok2 = Tokenizer::from_vocab(test::byte_level_vocab({{"b", "c"}, {"a", "b"}}, {}));
  CHECK(tok2->encode("abc") == Ids{'a', 256});
}

TEST_CASE("llama-bpe emits a piece that is a whole token without merging", "[tokenizer][bpe]") {
  // "abc" is a token, but the merges alone would give "a" + "bc".
  VocabData v = test::byte_level_vocab({{"b", "c"}}, {}, "llama-bpe");
  v.tokens.push_back("abc");
  v.types.push_back(kTokenNormal);
  auto llama3 = Tokenizer::from_vocab(v);
  CHECK(llama3->encode("abc", false) == Ids{257});
  v.pre = "qwen2";
  CHECK(Tokenizer::from_vocab(v)->encode("abc") == Ids{'a', 256});
}

TEST_CASE("special tokens are split out before BPE", "[tokenizer][bpe][special]") {
  auto tok = Tokenizer::from_vocab(hello_vocab());
  CHECK(tok->encode("<|im_start|>hello<|im_end|>") == Ids{266, 259, 267});
  CHECK(tok->encode("<|im_start|><|im_start|>") == Ids{266, 266});
  CHECK(tok->encode("he<tool>he") == Ids{256, 268, 256});
  // Longest first: "<x>y" wins over "<x>" at the same place.
  CHECK(tok->encode("<x>yy<x>") == Ids{270, 'y', 269});

  // Without parse_special, control tokens are plain text; user-defined ones are still matched.
  const Ids plain = tok->encode("<|im_end|>he<tool>", true, false);
  CHECK(std::find(plain.begin(), plain.end(), 267) == plain.end());
  CHECK(plain ==
        concat({bytes_of("<|"), Ids{'i', 'm', '_', 'e', 'n', 'd'}, bytes_of("|>"), Ids{256, 268}}));
}

TEST_CASE("BOS and EOS follow the file and the model's defaults", "[tokenizer][bpe][bos]") {
  VocabData v = hello_vocab();
  v.bos_id = 265;
  v.eos_id = 267;
  auto qwen = Tokenizer::from_vocab(v);
  CHECK(qwen->bos_id() == 265);
  CHECK(qwen->eos_id() == 267);
  CHECK(qwen->encode("hello") == Ids{259});  // qwen2 adds no BOS by default

  v.add_bos = true;
  CHECK(Tokenizer::from_vocab(v)->encode("hello") == Ids{265, 259});
  CHECK(Tokenizer::from_vocab(v)->encode("hello", false) == Ids{259});
  v.add_eos = true;
  CHECK(Tokenizer::from_vocab(v)->encode("hello") == Ids{265, 259, 267});

  VocabData l = hello_vocab("llama-bpe");
  l.bos_id = 266;
  CHECK(Tokenizer::from_vocab(l)->encode("hello") == Ids{266, 259});  // llama-bpe adds BOS
  l.add_bos = false;
  CHECK(Tokenizer::from_vocab(l)->encode("hello") == Ids{259});

  // Without ids in the file, BPE defaults to 11 for both; an out-of-range id keeps the default.
  VocabData d = hello_vocab();
  d.bos_id = 100000;
  auto defaults = Tokenizer::from_vocab(d);
  CHECK(defaults->bos_id() == 11);
  CHECK(defaults->eos_id() == 11);
}

TEST_CASE("end of generation", "[tokenizer][bpe]") {
  VocabData v = hello_vocab();
  v.eos_id = 259;  // any token named as EOS ends generation
  auto tok = Tokenizer::from_vocab(v);
  CHECK(tok->is_end_of_generation(259));
  CHECK(tok->is_end_of_generation(265));  // <|endoftext|>
  CHECK(tok->is_end_of_generation(267));  // <|im_end|>
  CHECK_FALSE(tok->is_end_of_generation(266));
  CHECK_FALSE(tok->is_end_of_generation(264));

  // A turn-ending token typed as normal is treated as control, as llama.cpp does.
  VocabData n = hello_vocab();
  n.types[267] = kTokenNormal;
  auto forced = Tokenizer::from_vocab(n);
  CHECK(forced->token_type(267) == kTokenControl);
  CHECK(forced->token_to_piece(267).empty());
}

TEST_CASE("byte-level BPE pieces and decoding", "[tokenizer][bpe][decode]") {
  auto tok = Tokenizer::from_vocab(hello_vocab());
  CHECK(tok->token_to_piece(264) == " world");
  CHECK(tok->token_to_piece('\n') == "\n");
  CHECK(tok->token_to_piece(266).empty());
  CHECK(tok->token_to_piece(266, true) == "<|im_start|>");
  CHECK(tok->token_to_piece(268) == "<tool>");
  CHECK(tok->token_to_piece(-1).empty());
  CHECK(tok->token_to_piece(100000).empty());
  // A UTF-8 character split over two tokens is restored by concatenation.
  CHECK(tok->token_to_piece(0xC3) + tok->token_to_piece(0xA9) == "\xC3\xA9");

  const Ids ids = tok->encode("<|im_start|>hello world<|im_end|>");
  CHECK(tok->decode(ids) == "hello world");
  CHECK(tok->decode(ids, true) == "<|im_start|>hello world<|im_end|>");
}

TEST_CASE("malformed byte-level vocabularies are rejected", "[tokenizer][bpe][errors]") {
  VocabData v = hello_vocab();
  v.model = "bert";
  CHECK_THROWS_AS(Tokenizer::from_vocab(v), Error);
  CHECK_THROWS_WITH(Tokenizer::from_vocab(v), Catch::Contains("'bert'"));

  VocabData empty = hello_vocab();
  empty.tokens.clear();
  empty.types.clear();
  CHECK_THROWS_WITH(Tokenizer::from_vocab(empty), Catch::Contains("tokenizer.ggml.tokens"));

  for (const std::string bad : {"ab", "a ", "", " "}) {
    VocabData m = hello_vocab();
    m.merges[2] = bad;
    CHECK_THROWS_WITH(Tokenizer::from_vocab(m), Catch::Contains("tokenizer.ggml.merges[2]"));
  }

  VocabData scores = hello_vocab();
  scores.scores = {1.0f, 2.0f};
  CHECK_THROWS_WITH(Tokenizer::from_vocab(scores), Catch::Contains("tokenizer.ggml.scores"));

  VocabData types = hello_vocab();
  types.types.pop_back();
  CHECK_THROWS_WITH(Tokenizer::from_vocab(types), Catch::Contains("tokenizer.ggml.token_type"));

  VocabData pre = hello_vocab("falcon-x");
  CHECK_THROWS_WITH(Tokenizer::from_vocab(pre), Catch::Contains("'falcon-x'"));
}

TEST_CASE("a merge whose result is not a token falls back to byte tokens", "[tokenizer][bpe]") {
  VocabData v = test::byte_level_vocab({{"a", "b"}}, {});
  v.tokens[256] = "zz";  // the merged text "ab" is no longer a token
  CHECK(Tokenizer::from_vocab(v)->encode("ab") == Ids{'a', 'b'});
}

TEST_CASE("tekken vocabularies add BOS unless the file says otherwise", "[tokenizer][bpe][bos]") {
  VocabData v = test::byte_level_vocab({{"a", "b"}}, {{"<s>", kTokenControl}}, "tekken");
  v.bos_id = static_cast<int64_t>(v.tokens.size()) - 1;
  const int32_t bos = static_cast<int32_t>(*v.bos_id);
  CHECK(Tokenizer::from_vocab(v)->encode("ab") == Ids{bos, 256});
  v.add_bos = false;
  CHECK(Tokenizer::from_vocab(v)->encode("ab") == Ids{256});
}
