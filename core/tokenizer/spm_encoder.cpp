// SPDX-License-Identifier: MIT
#include "tokenizer/spm_encoder.hpp"

#include <cstdio>
#include <queue>
#include <string>

#include "tokenizer/unicode.hpp"

namespace apr {
namespace {

struct Symbol {
  size_t begin, length;
  int prev, next;
};

struct Candidate {
  float score;
  int left;
  size_t length;
  bool operator<(const Candidate& other) const {  // highest score, then leftmost, on top
    return score != other.score ? score < other.score : left > other.left;
  }
};

}  // namespace

SpmEncoder::SpmEncoder(const Vocab& vocab, int32_t unk_id) : vocab_(vocab), unk_id_(unk_id) {
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    int32_t id = vocab.find(name);
    if (id < 0) id = vocab.find(std::string(1, static_cast<char>(b)));
    byte_ids_[b] = id;
  }
}

void SpmEncoder::emit_bytes(std::string_view symbol, std::vector<int32_t>& out) const {
  for (const char c : symbol) {
    const int32_t id = byte_ids_[static_cast<unsigned char>(c)];
    if (id >= 0) {
      out.push_back(id);
    } else if (unk_id_ >= 0) {
      out.push_back(unk_id_);
    }
  }
}

void SpmEncoder::encode(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  // One symbol per character. A byte that is not part of valid UTF-8 is a symbol of its own
  // (SentencePiece would swallow the bytes its lead byte announces, escaped spaces included).
  std::vector<Symbol> symbols;
  for (const unicode::Char& ch : unicode::decode_utf8(text)) {
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({ch.offset, ch.length, index - 1, -1});
    if (index > 0) symbols[index - 1].next = index;
  }
  const auto view = [&](int i) { return text.substr(symbols[i].begin, symbols[i].length); };

  std::priority_queue<Candidate> queue;
  const auto consider = [&](int left) {
    if (left < 0 || symbols[left].next < 0) return;
    const int right = symbols[left].next;
    const size_t length = symbols[left].length + symbols[right].length;
    const int32_t id = vocab_.find(std::string(text.substr(symbols[left].begin, length)));
    if (id >= 0) queue.push({vocab_.score[id], left, length});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) consider(i);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    if (left.length == 0 || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    if (left.length + right.length != c.length) continue;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    consider(left.prev);
    consider(c.left);
  }

  // Every merged symbol is a token; only single characters can be missing.
  for (int i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view symbol = view(i);
    if (int32_t id = vocab_.find(std::string(symbol)); id >= 0) {
      out.push_back(id);
    } else {
      emit_bytes(symbol, out);
    }
  }
}

}  // namespace apr
