// SPDX-License-Identifier: MIT
#include "tokenizer/pre_tokenizer.hpp"

#include <span>
#include <string>

#include "common/error.hpp"
#include "tokenizer/unicode.hpp"

namespace apr {
namespace {

using unicode::Char;
using Chars = std::span<const Char>;

// A matcher returns the length in characters of the match that its regex finds starting at
// s[i], or 0. The span is one piece of the previous stage: its end is the end of the text.
using Matcher = size_t (*)(Chars s, size_t i);

bool is_letter(Chars s, size_t i) {
  return i < s.size() && (s[i].classes & unicode::kLetter);
}
bool is_number(Chars s, size_t i) {
  return i < s.size() && (s[i].classes & unicode::kNumber);
}
bool is_space(Chars s, size_t i) {
  return i < s.size() && (s[i].classes & unicode::kWhitespace);
}
bool is_cp(Chars s, size_t i, uint32_t cp) {
  return i < s.size() && s[i].length == 1 && s[i].cp == cp;
}
bool is_cr_lf(Chars s, size_t i) {
  return is_cp(s, i, '\r') || is_cp(s, i, '\n');
}
// [^\s\p{L}\p{N}]
bool is_other(Chars s, size_t i) {
  return i < s.size() &&
         !(s[i].classes & (unicode::kLetter | unicode::kNumber | unicode::kWhitespace));
}

template <typename Pred>
size_t run_length(Chars s, size_t i, Pred pred, size_t limit = SIZE_MAX) {
  size_t n = 0;
  while (n < limit && pred(s, i + n)) ++n;
  return n;
}

bool ascii_ieq(Chars s, size_t i, char lower) {
  return is_cp(s, i, static_cast<unsigned char>(lower)) ||
         is_cp(s, i, static_cast<unsigned char>(lower - 'a' + 'A'));
}

// 's|'t|'re|'ve|'m|'ll|'d, case-sensitive or ASCII case-insensitive.
size_t match_contraction(Chars s, size_t i, bool ignore_case) {
  if (!is_cp(s, i, '\'')) return 0;
  const auto at = [&](size_t k, char c) {
    return ignore_case ? ascii_ieq(s, i + k, c) : is_cp(s, i + k, static_cast<unsigned char>(c));
  };
  if (at(1, 's') || at(1, 't') || at(1, 'm') || at(1, 'd')) return 2;
  if ((at(1, 'r') || at(1, 'v')) && at(2, 'e')) return 3;
  if (at(1, 'l') && at(2, 'l')) return 3;
  return 0;
}

// " ?X+" for a class predicate X that never holds for a space.
template <typename Pred>
size_t match_optional_space_run(Chars s, size_t i, Pred pred) {
  const size_t lead = is_cp(s, i, ' ') ? 1 : 0;
  const size_t n = run_length(s, i + lead, pred);
  return n == 0 ? 0 : lead + n;
}

// \s+(?!\S): a whitespace run, minus its last character when a non-space follows it.
size_t match_space_not_before_nonspace(Chars s, size_t i) {
  const size_t n = run_length(s, i, is_space);
  if (n == 0) return 0;
  if (i + n == s.size()) return n;
  return n - 1;
}

// The last alternatives of the llama3, qwen2 and tekken regexes, \s*[\r\n]+|\s+(?!\S)|\s+: up
// to and including the last CR or LF of a whitespace run, else the run but its last space when
// a non-space follows, else the whole run.
size_t match_whitespace_alternatives(Chars s, size_t i) {
  const size_t spaces = run_length(s, i, is_space);
  if (spaces == 0) return 0;
  for (size_t k = spaces; k > 0; --k) {
    if (is_cr_lf(s, i + k - 1)) return k;
  }
  if (size_t n = match_space_not_before_nonspace(s, i)) return n;
  return spaces;
}

size_t match_gpt2_body(Chars s, size_t i) {
  if (size_t n = match_contraction(s, i, false)) return n;
  if (size_t n = match_optional_space_run(s, i, is_letter)) return n;
  if (size_t n = match_optional_space_run(s, i, is_number)) return n;
  if (size_t n = match_optional_space_run(s, i, is_other)) return n;
  return match_space_not_before_nonspace(s, i);
}

size_t match_gpt2(Chars s, size_t i) {
  if (size_t n = match_gpt2_body(s, i)) return n;
  return run_length(s, i, is_space);
}

// (?:'[sS]|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+
size_t match_llama3_like(Chars s, size_t i, size_t max_digits) {
  if (size_t n = match_contraction(s, i, true)) return n;
  if (i < s.size() && !is_cr_lf(s, i) && !is_letter(s, i) && !is_number(s, i) &&
      is_letter(s, i + 1)) {
    return 1 + run_length(s, i + 1, is_letter);
  }
  if (size_t n = run_length(s, i, is_letter)) return n;
  if (size_t n = run_length(s, i, is_number, max_digits)) return n;
  if (size_t n = match_optional_space_run(s, i, is_other))
    return n + run_length(s, i + n, is_cr_lf);
  return match_whitespace_alternatives(s, i);
}

size_t match_llama3(Chars s, size_t i) {
  return match_llama3_like(s, i, 3);
}
size_t match_qwen2(Chars s, size_t i) {
  return match_llama3_like(s, i, 1);
}

// Mistral's tekken regex as llama.cpp writes and runs it:
//   [^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+
//   |[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*
//   |\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
// llama.cpp evaluates it with std::regex over a copy of the text in which every non-ASCII code
// point is one byte standing for its class, so a letter is "not a-z" (upper) or "not A-Z"
// (lower) only by its ASCII case: every non-ASCII letter is both, and combining marks are no
// letters at all (tokenizer.json's pattern has \p{Lu}, \p{Ll}, \p{M}; llama.cpp's ids are the
// reference). The backtracking of std::regex's ECMAScript alternation is reproduced below.
bool is_ascii_lower(Chars s, size_t i) {
  return i < s.size() && s[i].length == 1 && s[i].cp >= 'a' && s[i].cp <= 'z';
}
bool is_ascii_upper(Chars s, size_t i) {
  return i < s.size() && s[i].length == 1 && s[i].cp >= 'A' && s[i].cp <= 'Z';
}
// (?=[\p{L}])([^a-z]) and (?=[\p{L}])([^A-Z])
bool is_tekken_upper(Chars s, size_t i) {
  return is_letter(s, i) && !is_ascii_lower(s, i);
}
bool is_tekken_lower(Chars s, size_t i) {
  return is_letter(s, i) && !is_ascii_upper(s, i);
}
bool is_cr_lf_slash(Chars s, size_t i) {
  return is_cr_lf(s, i) || is_cp(s, i, '/');
}

size_t match_tekken(Chars s, size_t i) {
  // [^\r\n\p{L}\p{N}]? is greedy; without it the letter alternatives cannot match at a
  // character it would have taken, so one try with it (when it applies) is the whole search.
  const size_t lead =
      i < s.size() && !is_cr_lf(s, i) && !is_letter(s, i) && !is_number(s, i) ? 1 : 0;
  const size_t j = i + lead;
  const size_t upper = run_length(s, j, is_tekken_upper);
  // Upper* Lower+: Upper* gives back characters until Lower+ can start.
  for (size_t k = upper + 1; k-- > 0;) {
    if (size_t n = run_length(s, j + k, is_tekken_lower)) return lead + k + n;
  }
  // Upper+ Lower*
  if (upper > 0) return lead + upper + run_length(s, j + upper, is_tekken_lower);
  if (is_number(s, i)) return 1;
  if (size_t n = match_optional_space_run(s, i, is_other))
    return n + run_length(s, i + n, is_cr_lf_slash);
  return match_whitespace_alternatives(s, i);
}

// [\p{P}\$\+<=>\^~\|]+
size_t match_punctuation_run(Chars s, size_t i) {
  return run_length(s, i, [](Chars t, size_t k) {
    if (k >= t.size()) return false;
    if (t[k].classes & unicode::kPunctuation) return true;
    if (t[k].length != 1) return false;
    return std::string_view("$+<=>^~|").find(static_cast<char>(t[k].cp)) != std::string_view::npos;
  });
}

size_t match_number_run(Chars s, size_t i) {
  return run_length(s, i, is_number);
}

size_t match_three_ascii_digits(Chars s, size_t i) {
  const auto digit = [](Chars t, size_t k) {
    return k < t.size() && t[k].length == 1 && t[k].cp >= '0' && t[k].cp <= '9';
  };
  return digit(s, i) && digit(s, i + 1) && digit(s, i + 2) ? 3 : 0;
}

struct Range {
  size_t begin, end;  // characters
};

// One regex stage: every piece is searched left to right; matches and the stretches between
// them both become pieces of the next stage.
std::vector<Range> apply_stage(std::span<const Char> chars, const std::vector<Range>& pieces,
                               Matcher match) {
  std::vector<Range> out;
  out.reserve(pieces.size());
  for (const Range& piece : pieces) {
    const Chars s = chars.subspan(piece.begin, piece.end - piece.begin);
    size_t gap = 0, i = 0;
    while (i < s.size()) {
      const size_t n = match(s, i);
      if (n == 0) {
        ++i;
        continue;
      }
      if (gap < i) out.push_back({piece.begin + gap, piece.begin + i});
      out.push_back({piece.begin + i, piece.begin + i + n});
      i += n;
      gap = i;
    }
    if (gap < s.size()) out.push_back({piece.begin + gap, piece.end});
  }
  return out;
}

size_t match_one_digit(Chars s, size_t i) {
  return run_length(s, i, is_number, 1);
}

// The `tokenizer.ggml.pre` names llama.cpp gives each regex family (llama-vocab.cpp), for the
// families apr implements.
struct PreTokenizerName {
  std::string_view name;
  PreTokenizer kind;
};
constexpr PreTokenizerName kPreTokenizerNames[] = {
    {"default", PreTokenizer::kDefault},
    {"gpt-2", PreTokenizer::kGpt2},
    {"phi-2", PreTokenizer::kGpt2},
    {"mpt", PreTokenizer::kGpt2},
    {"olmo", PreTokenizer::kGpt2},
    {"jais", PreTokenizer::kGpt2},
    {"roberta-bpe", PreTokenizer::kGpt2},
    {"llama-bpe", PreTokenizer::kLlama3},
    {"llama3", PreTokenizer::kLlama3},
    {"llama-v3", PreTokenizer::kLlama3},
    {"dbrx", PreTokenizer::kLlama3},
    {"smaug-bpe", PreTokenizer::kLlama3},
    {"qwen2", PreTokenizer::kQwen2},
    {"deepseek-r1-qwen", PreTokenizer::kQwen2},
    {"stablelm2", PreTokenizer::kQwen2},
    {"smollm", PreTokenizer::kDigitsThenGpt2},
    {"starcoder", PreTokenizer::kDigitsThenGpt2},
    {"refact", PreTokenizer::kDigitsThenGpt2},
    {"command-r", PreTokenizer::kDigitsThenGpt2},
    {"codeshell", PreTokenizer::kDigitsThenGpt2},
    {"exaone", PreTokenizer::kDigitsThenGpt2},
    {"minerva-7b", PreTokenizer::kDigitsThenGpt2},
    {"tekken", PreTokenizer::kTekken},
};

}  // namespace

PreTokenizer pre_tokenizer_from_name(std::string_view name) {
  if (name.empty()) return PreTokenizer::kDefault;
  std::string supported;
  for (const auto& entry : kPreTokenizerNames) {
    if (entry.name == name) return entry.kind;
    supported += (supported.empty() ? "" : ", ") + std::string(entry.name);
  }
  throw Error("tokenizer.ggml.pre: unsupported pre-tokenizer '" + std::string(name) +
              "' (supported: " + supported + ")");
}

std::vector<std::string_view> pre_tokenize(std::string_view text, PreTokenizer kind) {
  const std::vector<Char> chars = unicode::decode_utf8(text);
  std::vector<Range> pieces;
  if (!chars.empty()) pieces.push_back({0, chars.size()});
  switch (kind) {
    case PreTokenizer::kDefault:
      pieces = apply_stage(chars, pieces, match_punctuation_run);
      pieces = apply_stage(chars, pieces, match_gpt2_body);
      pieces = apply_stage(chars, pieces, match_number_run);
      pieces = apply_stage(chars, pieces, match_three_ascii_digits);
      break;
    case PreTokenizer::kGpt2:
      pieces = apply_stage(chars, pieces, match_gpt2);
      break;
    case PreTokenizer::kLlama3:
      pieces = apply_stage(chars, pieces, match_llama3);
      break;
    case PreTokenizer::kQwen2:
      pieces = apply_stage(chars, pieces, match_qwen2);
      break;
    case PreTokenizer::kDigitsThenGpt2:
      pieces = apply_stage(chars, pieces, match_one_digit);
      pieces = apply_stage(chars, pieces, match_gpt2);
      break;
    case PreTokenizer::kTekken:
      pieces = apply_stage(chars, pieces, match_tekken);
      break;
  }
  std::vector<std::string_view> out;
  out.reserve(pieces.size());
  for (const Range& r : pieces) {
    const size_t begin = chars[r.begin].offset;
    const size_t end = chars[r.end - 1].offset + chars[r.end - 1].length;
    out.push_back(text.substr(begin, end - begin));
  }
  return out;
}

}  // namespace apr
