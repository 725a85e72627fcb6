// SPDX-License-Identifier: MIT
#include "tokenizer/tokenizer.hpp"

#include <cstdio>
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
// treats them as control tokens even when a file types them otherwise (so Gemma's </s>, a
// user-defined HTML tag there, is a control token that ends generation, as in llama.cpp).
constexpr std::string_view kEndOfTurnTexts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "\xEF\xBD\x9C"
    "end\xE2\x96\x81of\xE2\x96\x81sentence"
    "\xEF\xBD\x9C",  // <｜end▁of▁sentence｜>
    "[e~[",
};

// llama.cpp's two exceptions to the list above, decided on the end-of-generation set: with
// <|return|> and <|call|>, or <|call|>/<|calls|> and <|flush|> (gpt-oss, Solar Open), <|end|>
// ends nothing and is user-defined; with <|tool_response> or <|plamo:eos|> (Gemma 4, PLaMo),
// </s> is a normal token.
void apply_end_of_generation_exceptions(Vocab& vocab, std::unordered_set<int32_t>& eog) {
  const auto in_eog = [&](std::string_view text) {
    for (const int32_t id : eog) {
      if (vocab.text[id] == text) return id;
    }
    return -1;
  };
  const bool has_call = in_eog("<|call|>") >= 0 || in_eog("<|calls|>") >= 0;
  if (const int32_t end = in_eog("<|end|>");
      end >= 0 && has_call && (in_eog("<|return|>") >= 0 || in_eog("<|flush|>") >= 0)) {
    eog.erase(end);
    vocab.type[end] = kTokenUserDefined;
  }
  if (const int32_t s = in_eog("</s>");
      s >= 0 && (in_eog("<|tool_response>") >= 0 || in_eog("<|plamo:eos|>") >= 0)) {
    eog.erase(s);
    vocab.type[s] = kTokenNormal;
  }
}

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

// llama.cpp gives every special token of a model whose general.name (lower-cased) contains
// "phi-3" or "phi3" the RSTRIP attribute, and </s> too, except <unk>, <s> and <|endoftext|>:
// the whitespace right of such a token in the text is dropped before tokenizing.
void apply_phi3_rstrip(std::string_view name, Vocab& vocab) {
  std::string lower(name);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (lower.find("phi-3") == std::string::npos && lower.find("phi3") == std::string::npos) return;
  for (size_t id = 0; id < vocab.size(); ++id) {
    const int32_t type = vocab.type[id];
    if (type == kTokenControl || type == kTokenUserDefined || type == kTokenUnknown) {
      vocab.rstrip[id] = true;
    }
  }
  if (const int32_t id = vocab.find("</s>"); id >= 0) vocab.rstrip[id] = true;
  for (const char* text : {"<unk>", "<s>", "<|endoftext|>"}) {
    if (const int32_t id = vocab.find(text); id >= 0) vocab.rstrip[id] = false;
  }
}

// SentencePiece byte fallback needs a token for each of the 256 bytes: <0xXX>, or the byte
// itself as a one-byte token, as llama.cpp looks them up. A vocabulary with some <0xXX> tokens
// but not all is broken (llama.cpp would abort on the first missing byte). One without any falls
// back to <unk> (llama.cpp aborts there as well; SentencePiece itself writes <unk>).
void check_byte_fallback(const Vocab& vocab) {
  int found = 0, first_missing = -1;
  bool any_hex = false;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    const bool hex = vocab.find(name) >= 0;
    any_hex = any_hex || hex;
    if (hex || vocab.find(std::string(1, static_cast<char>(b))) >= 0) {
      ++found;
    } else if (first_missing < 0) {
      first_missing = b;
    }
  }
  if (any_hex && found < 256) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", first_missing);
    throw Error("tokenizer.ggml.tokens: byte-fallback vocabulary without a token for " +
                std::to_string(256 - found) + " of the 256 bytes (first: " + name + ")");
  }
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
    // llama.cpp's defaults: llama3-style and tekken vocabularies want BOS.
    t->add_bos_ =
        data.add_bos.value_or(pre == PreTokenizer::kLlama3 || pre == PreTokenizer::kTekken);
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
  apply_end_of_generation_exceptions(vocab, t->end_of_generation_);

  apply_phi3_rstrip(data.name, vocab);
  t->specials_ = std::make_unique<SpecialTokenMatcher>(vocab);
  if (spm) {
    check_byte_fallback(vocab);
    t->spm_ = std::make_unique<SpmEncoder>(vocab, t->unk_id_);
  }
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
