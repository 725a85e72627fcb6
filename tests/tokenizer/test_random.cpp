// SPDX-License-Identifier: MIT
// Randomised checks: the merge loops against naive reimplementations, and encode/decode round
// trips on random text with emoji, CJK, combining marks and invalid UTF-8.
#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "test_vocabularies.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/unicode.hpp"

using namespace apr;
using Ids = std::vector<int32_t>;

namespace {

std::string random_word(std::mt19937& rng, const std::string& alphabet, size_t max_length) {
  std::uniform_int_distribution<size_t> length(1, max_length);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::string s;
  for (size_t n = length(rng); n > 0; --n) s += alphabet[pick(rng)];
  return s;
}

// Merge the pair of lowest rank, leftmost first, until none applies: the textbook loop.
std::vector<std::string> naive_bpe(
    const std::string& word, const std::map<std::pair<std::string, std::string>, int>& ranks) {
  std::vector<std::string> symbols;
  for (char c : word) symbols.emplace_back(1, c);
  for (;;) {
    int best = -1;
    size_t at = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = ranks.find({symbols[i], symbols[i + 1]});
      if (it != ranks.end() && (best < 0 || it->second < best)) best = it->second, at = i;
    }
    if (best < 0) return symbols;
    symbols[at] += symbols[at + 1];
    symbols.erase(symbols.begin() + at + 1);
  }
}

// Merge the adjacent pair whose concatenation is the best-scored piece, leftmost first.
std::vector<std::string> naive_spm(const std::string& text,
                                   const std::map<std::string, float>& scores) {
  std::vector<std::string> symbols;
  for (char c : text) symbols.emplace_back(1, c);
  for (;;) {
    bool found = false;
    float best = 0;
    size_t at = 0;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = scores.find(symbols[i] + symbols[i + 1]);
      if (it != scores.end() && (!found || it->second > best))
        found = true, best = it->second, at = i;
    }
    if (!found) return symbols;
    symbols[at] += symbols[at + 1];
    symbols.erase(symbols.begin() + at + 1);
  }
}

void append_cp(std::string& s, uint32_t cp) {
  unicode::append_utf8(s, cp);
}

// Random text drawn from several scripts, with stray and truncated UTF-8 when `invalid`.
std::string random_text(std::mt19937& rng, size_t n_chars, bool invalid) {
  std::uniform_int_distribution<int> kind(0, invalid ? 12 : 10);
  std::uniform_int_distribution<int> ascii(0x20, 0x7E);
  std::string s;
  for (size_t i = 0; i < n_chars; ++i) {
    switch (kind(rng)) {
      case 0:
      case 1:
      case 2:
        s += static_cast<char>(ascii(rng));
        break;
      case 3:
        s += " ";
        break;
      case 4:
        s += std::string("\n\t\r  ").substr(std::uniform_int_distribution<int>(0, 4)(rng), 1);
        break;
      case 5:
        append_cp(s, std::uniform_int_distribution<uint32_t>(0x4E00, 0x9FFF)(rng));
        break;
      case 6:
        append_cp(s, std::uniform_int_distribution<uint32_t>(0x1F600, 0x1F64F)(rng));
        break;
      case 7:
        append_cp(s, std::uniform_int_distribution<uint32_t>(0x0300, 0x036F)(rng));
        break;
      case 8:
        append_cp(s, std::uniform_int_distribution<uint32_t>(0x0410, 0x044F)(rng));
        break;
      case 9:
        append_cp(s, std::uniform_int_distribution<uint32_t>(0x0660, 0x0669)(rng));
        break;
      case 10:
        s += "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB";
        break;  // ZWJ sequence
      case 11:
        s += static_cast<char>(std::uniform_int_distribution<int>(0x80, 0xFF)(rng));
        break;
      default:
        s += "\xE4\xB8";
        break;  // truncated 3-byte sequence
    }
  }
  return s;
}

}  // namespace

TEST_CASE("byte-level BPE merges match a naive merge loop", "[tokenizer][bpe][random]") {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 20; ++trial) {
    // Random merges over a small alphabet, each forming a new token from two existing ones.
    std::vector<std::string> known = {"a", "b", "c", "d"};
    std::vector<std::pair<std::string, std::string>> merges;
    std::map<std::pair<std::string, std::string>, int> ranks;
    std::set<std::string> formed(known.begin(), known.end());
    while (merges.size() < 40) {
      std::uniform_int_distribution<size_t> pick(0, known.size() - 1);
      const std::string l = known[pick(rng)], r = known[pick(rng)];
      if (l.size() + r.size() > 6 || !formed.insert(l + r).second) continue;
      ranks[{l, r}] = static_cast<int>(merges.size());
      merges.push_back({l, r});
      known.push_back(l + r);
    }
    auto tok = Tokenizer::from_vocab(test::byte_level_vocab(merges, {}));
    for (int w = 0; w < 50; ++w) {
      const std::string word = random_word(rng, "abcd", 24);
      Ids expected;
      for (const std::string& symbol : naive_bpe(word, ranks)) {
        if (symbol.size() == 1) {
          expected.push_back(static_cast<unsigned char>(symbol[0]));
        } else {
          for (size_t m = 0; m < merges.size(); ++m) {
            if (merges[m].first + merges[m].second == symbol) expected.push_back(256 + m);
          }
        }
      }
      INFO("word " << word);
      CHECK(tok->encode(word) == expected);
    }
  }
}

TEST_CASE("SentencePiece merges match a naive merge loop", "[tokenizer][spm][random]") {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 20; ++trial) {
    // Pieces of 1..4 letters; scores from a small set so that ties happen.
    std::vector<std::pair<std::string, float>> pieces;
    std::map<std::string, float> scores;
    for (char c : std::string("abcd")) {
      pieces.push_back({std::string(1, c), -100});
      scores[std::string(1, c)] = -100;
    }
    while (pieces.size() < 40) {
      const std::string p = random_word(rng, "abcd", 4);
      if (scores.count(p)) continue;
      const float score = static_cast<float>(std::uniform_int_distribution<int>(-8, 0)(rng));
      pieces.push_back({p, score});
      scores[p] = score;
    }
    VocabData v = test::spm_vocab(pieces);
    v.add_space_prefix = false;
    auto tok = Tokenizer::from_vocab(v);
    for (int w = 0; w < 50; ++w) {
      const std::string text = random_word(rng, "abcd", 24);
      Ids expected;
      for (const std::string& symbol : naive_spm(text, scores)) {
        for (size_t i = 0; i < pieces.size(); ++i) {
          if (pieces[i].first == symbol) expected.push_back(test::kFirstSpmPiece + i);
        }
      }
      INFO("text " << text);
      CHECK(tok->encode(text, false) == expected);
    }
  }
}

TEST_CASE("encode/decode round trips on random text", "[tokenizer][random][decode]") {
  std::mt19937 rng(7);
  const std::vector<std::pair<std::string, std::string>> merges = {
      {" ", "t"}, {"h", "e"}, {" t", "he"}, {"i", "n"}, {"\xE4", "\xB8"}, {"\n", "\n"}, {" ", " "}};
  const std::vector<std::pair<std::string, int32_t>> specials = {{"<|im_end|>", kTokenControl}};
  for (const char* pre : {"qwen2", "llama-bpe", "gpt-2", "default"}) {
    auto tok = Tokenizer::from_vocab(test::byte_level_vocab(merges, specials, pre));
    for (int i = 0; i < 200; ++i) {
      const std::string text = random_text(rng, 1 + i % 40, i % 2 == 1);
      INFO("pre " << pre << " text " << text);
      CHECK(tok->decode(tok->encode(text, false)) == text);
      CHECK(tok->decode(tok->encode(text + "<|im_end|>" + text, false), true) ==
            text + "<|im_end|>" + text);
    }
  }

  const std::string sp = "\xE2\x96\x81";
  auto spm = Tokenizer::from_vocab(
      test::spm_vocab({{sp, -1}, {sp + "t", -2}, {"he", -3}, {"\xE4\xB8\x80", -4}, {"in", -5}}));
  for (int i = 0; i < 400; ++i) {
    const std::string text = random_text(rng, 1 + i % 40, i % 2 == 1);
    INFO("spm text " << text);
    const Ids ids = spm->encode(text);
    CHECK(ids.front() == 1);
    CHECK(spm->decode(ids) == text);
    std::string streamed;
    for (size_t k = 1; k < ids.size(); ++k) streamed += spm->token_to_piece(ids[k]);
    CHECK(streamed == " " + text);
  }
}
