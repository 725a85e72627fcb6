// SPDX-License-Identifier: MIT
#include "tokenizer/special_tokens.hpp"

#include <algorithm>
#include <list>

namespace apr {

SpecialTokenMatcher::SpecialTokenMatcher(const Vocab& vocab) {
  for (size_t id = 0; id < vocab.size(); ++id) {
    const int32_t type = vocab.type[id];
    if (vocab.text[id].empty()) continue;  // would match everywhere
    if (type == kTokenControl || type == kTokenUserDefined || type == kTokenUnknown) {
      entries_.push_back({static_cast<int32_t>(id), vocab.text[id], type == kTokenUserDefined,
                          id < vocab.rstrip.size() && vocab.rstrip[id]});
    }
  }
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const Entry& a, const Entry& b) { return a.text.size() > b.text.size(); });
}

std::vector<Fragment> SpecialTokenMatcher::split(std::string_view text, bool parse_special) const {
  std::list<Fragment> fragments;
  if (!text.empty()) fragments.push_back({-1, text});
  for (const Entry& entry : entries_) {
    if (!parse_special && !entry.user_defined) continue;
    // Most special tokens of a large vocabulary (Gemma's 6000 <unusedN>) never occur: one scan
    // of the whole text rules them out before any fragment is searched.
    if (text.find(entry.text) == std::string_view::npos) continue;
    for (auto it = fragments.begin(); it != fragments.end(); ++it) {
      if (it->token >= 0) continue;
      std::string_view rest = it->text;
      size_t pos = rest.find(entry.text);
      if (pos == std::string_view::npos) continue;
      // Replace this raw fragment by its pieces; `it` ends on the last one inserted.
      it = fragments.erase(it);
      while (pos != std::string_view::npos) {
        if (pos > 0) fragments.insert(it, {-1, rest.substr(0, pos)});
        fragments.insert(it, {entry.id, entry.text});
        rest = rest.substr(pos + entry.text.size());
        if (entry.rstrip) {
          // C isspace in the "C" locale, as llama.cpp strips.
          const size_t keep = rest.find_first_not_of(" \t\n\v\f\r");
          rest = keep == std::string_view::npos ? std::string_view() : rest.substr(keep);
        }
        pos = rest.find(entry.text);
      }
      if (!rest.empty()) fragments.insert(it, {-1, rest});
      --it;
    }
  }
  return {fragments.begin(), fragments.end()};
}

}  // namespace apr
