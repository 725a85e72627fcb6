// SPDX-License-Identifier: MIT
#include "tokenizer/tokenizer.hpp"

#include <cstdlib>
#include <utility>

#include "common/error.hpp"
#include "tokenizer/bpe_encoder.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/special_tokens.hpp"
#include "tokenizer/spm_encoder.hpp"
#include "tokenizer/vocab.hpp"

namespace apr {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, how SentencePiece writes ' '

// Tokens that end a turn in common chat formats. llama.cpp stops on these whatever their id and
// treats them as control tokens even when a file types them otherwise.
constexpr std::string_view kEndOfTurnTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",   "<|endoftext|>",
    "<|eom_id|>", "<EOT>",      "_<EOT>",  "<|end_of_text|>",
};

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string_view::npos;
       pos = hit + from.size()) {
    out.append(text.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(text.substr(pos));
  return out;
}

// An id from the file overrides the default only when it names a token.
int32_t pick_id(const std::optional<int64_t>& from_file, int64_t fallback, size_t n_vocab) {
  const int64_t id = from_file && *from_file >= 0 && static_cast<uint64_t>(*from_file) < n_vocab
                         ? *from_file
                         : fallback;
  return id >= 0 && static_cast<uint64_t>(id) < n_vocab ? static_cast<int32_t>(id) : -1;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_vocab(VocabData data) {
  const bool spm = data.model == "llama";
  if (!spm && data.model != "gpt2") {
    throw Error("tokenizer.ggml.model: unsupported tokenizer model '" + data.model +
                "' (supported: gpt2, llama)");
  }
  const size_t n = data.tokens.size();
  if (n == 0) throw Error("tokenizer.ggml.tokens: missing or empty");
  if (n > static_cast<size_t>(INT32_MAX)) throw Error("tokenizer.ggml.tokens: too many tokens");
  if (!data.scores.empty() && data.scores.size() != n) {
    throw Error("tokenizer.ggml.scores: " + std::to_string(data.scores.size()) + " entries for " +
                std::to_string(n) + " tokens");
  }
  if (!data.types.empty() && data.types.size() != n) {
    throw Error("tokenizer.ggml.token_type: " + std::to_string(data.types.size()) +
                " entries for " + std::to_string(n) + " tokens");
  }

  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->model_ = data.model;
  t->pre_ = data.pre;
  t->is_spm_ = spm;
  t->vocab_ = std::make_unique<Vocab>(std::move(data.tokens), std::move(data.scores),
                                      std::move(data.types));
  Vocab& vocab = *t->vocab_;

  if (spm) {
    t->bos_id_ = pick_id(data.bos_id, 1, n);
    t->eos_id_ = pick_id(data.eos_id, 2, n);
    t->unk_id_ = pick_id(data.unk_id, 0, n);
    t->add_bos_ = data.add_bos.value_or(true);
    t->add_space_prefix_ = data.add_space_prefix.value_or(true);
  } else {
    const PreTokenizer pre = pre_tokenizer_from_name(data.pre);
    t->bos_id_ = pick_id(data.bos_id, 11, n);
    t->eos_id_ = pick_id(data.eos_id, 11, n);
    t->unk_id_ = pick_id(data.unk_id, -1, n);
    t->add_bos_ = data.add_bos.value_or(pre == PreTokenizer::kLlama3);
    t->add_space_prefix_ = false;  // byte-level BPE never adds one, whatever the file says
    t->bpe_ = std::make_unique<BpeEncoder>(vocab, data.merges, pre);
  }
  t->eot_id_ = pick_id(data.eot_id, -1, n);
  t->pad_id_ = pick_id(data.pad_id, -1, n);
  t->add_eos_ = data.add_eos.value_or(false);

  for (std::string_view text : kEndOfTurnTexts) {
    const int32_t id = vocab.find(std::string(text));
    if (id < 0) continue;
    t->end_of_generation_.insert(id);
    vocab.type[id] = kTokenControl;
  }
  if (t->eos_id_ >= 0) t->end_of_generation_.insert(t->eos_id_);
  if (t->eot_id_ >= 0) t->end_of_generation_.insert(t->eot_id_);

  t->specials_ = std::make_unique<SpecialTokenMatcher>(vocab);
  if (spm) t->spm_ = std::make_unique<SpmEncoder>(vocab, t->unk_id_);
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_ && bos_id_ >= 0) out.push_back(bos_id_);
  bool after_special = true;  // SentencePiece prefixes a space at the start and after specials
  for (const Fragment& fragment : specials_->split(text, parse_special)) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      after_special = true;
      continue;
    }
    if (is_spm_) {
      std::string escaped = add_space_prefix_ && after_special ? std::string(kSpmSpace) : "";
      escaped += replace_all(fragment.text, " ", kSpmSpace);
      spm_->encode(escaped, out);
    } else {
      bpe_->encode(fragment.text, out);
    }
    after_special = false;
  }
  if (add_special && add_eos_ && eos_id_ >= 0) out.push_back(eos_id_);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_->size()) return {};
  const std::string& text = vocab_->text[id];
  switch (vocab_->type[id]) {
    case kTokenControl:
    case kTokenUnknown:
      return render_special ? text : std::string();
    case kTokenUserDefined:
      return text;
    case kTokenNormal:
      return is_spm_ ? replace_all(text, kSpmSpace, " ") : byte_level::decode(text);
    case kTokenByte: {
      // "<0xXX>"
      if (!is_spm_ || text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') {
        return {};
      }
      char* end = nullptr;
      const std::string hex = text.substr(3, 2);
      const long value = std::strtol(hex.c_str(), &end, 16);
      return end == hex.c_str() + 2 ? std::string(1, static_cast<char>(value)) : std::string();
    }
    default:  // unused and undefined tokens render as nothing, as in llama.cpp
      return {};
  }
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  bool strip_space = is_spm_ && add_space_prefix_;
  for (const int32_t id : ids) {
    std::string piece = token_to_piece(id, render_special);
    const int32_t type = token_type(id);
    if (strip_space && type != kTokenControl && type != kTokenUnknown) {
      if (!piece.empty() && piece[0] == ' ') piece.erase(0, 1);
      strip_space = false;
    }
    out += piece;
  }
  return out;
}

size_t Tokenizer::vocab_size() const {
  return vocab_->size();
}

std::string_view Tokenizer::token_text(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_->size()) return {};
  return vocab_->text[id];
}

int32_t Tokenizer::token_type(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= vocab_->size()) return kTokenUndefined;
  return vocab_->type[id];
}

}  // namespace apr
