// SPDX-License-Identifier: MIT
#include "tokenizer/bpe_encoder.hpp"

#include <queue>

#include "common/error.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/unicode.hpp"

namespace apr {
namespace {

// Byte-level symbols are never raw NUL bytes (NUL is written as U+0100), so NUL can join keys.
std::string pair_key(std::string_view left, std::string_view right) {
  std::string key;
  key.reserve(left.size() + right.size() + 1);
  key.append(left);
  key += '\0';
  key.append(right);
  return key;
}

struct Symbol {
  size_t begin, length;  // bytes of the encoded piece
  int prev, next;        // neighbours; -1 at the ends
};

struct Candidate {
  int rank;
  int left;       // symbol index
  size_t length;  // bytes the merged symbol would have; stale candidates no longer match
  bool operator<(const Candidate& other) const {  // lowest rank, then leftmost, on top
    return rank != other.rank ? rank > other.rank : left > other.left;
  }
};

}  // namespace

BpeEncoder::BpeEncoder(const Vocab& vocab, const std::vector<std::string>& merges, PreTokenizer pre)
    : vocab_(vocab),
      pre_(pre),
      ignore_merges_(pre == PreTokenizer::kLlama3 || pre == PreTokenizer::kTekken) {
  ranks_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& merge = merges[i];
    const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
    if (space == std::string::npos || space + 1 == merge.size()) {
      throw Error("tokenizer.ggml.merges[" + std::to_string(i) +
                  "]: expected \"left right\", got \"" + merge + "\"");
    }
    // The first occurrence of a pair keeps its rank.
    ranks_.emplace(pair_key(std::string_view(merge).substr(0, space),
                            std::string_view(merge).substr(space + 1)),
                   static_cast<int>(i));
  }
}

int BpeEncoder::rank(std::string_view left, std::string_view right) const {
  auto it = ranks_.find(pair_key(left, right));
  return it == ranks_.end() ? -1 : it->second;
}

void BpeEncoder::encode(std::string_view text, std::vector<int32_t>& out) const {
  for (std::string_view piece : pre_tokenize(text, pre_))
    encode_piece(byte_level::encode(piece), out);
}

void BpeEncoder::encode_piece(const std::string& piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    if (int32_t id = vocab_.find(piece); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < piece.size();) {
    const size_t length = std::min(unicode::utf8_sequence_length(piece[pos]), piece.size() - pos);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({pos, length, index - 1, -1});
    if (index > 0) symbols[index - 1].next = index;
    pos += length;
  }
  const auto view = [&](int i) {
    return std::string_view(piece).substr(symbols[i].begin, symbols[i].length);
  };

  std::priority_queue<Candidate> queue;
  const auto consider = [&](int left) {
    if (left < 0 || symbols[left].next < 0) return;
    const int right = symbols[left].next;
    const int r = rank(view(left), view(right));
    if (r >= 0) queue.push({r, left, symbols[left].length + symbols[right].length});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) consider(i);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    if (left.length == 0 || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (left.length + right.length != c.length) continue;  // one side changed since
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    consider(left.prev);
    consider(c.left);
  }

  for (int i = 0; i >= 0; i = symbols[i].next) {
    const std::string symbol(view(i));
    if (int32_t id = vocab_.find(symbol); id >= 0) {
      out.push_back(id);
      continue;
    }
    // Not a token (the merges and the vocabulary disagree): fall back to single bytes that are.
    for (const char byte : symbol) {
      if (int32_t id = vocab_.find(std::string(1, byte)); id >= 0) out.push_back(id);
    }
  }
}

}  // namespace apr
