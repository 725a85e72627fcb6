// SPDX-License-Identifier: MIT
#include "chat/chat_template.hpp"

#include <array>
#include <cstdint>

#include "common/error.hpp"

namespace apr::chat {
namespace {

struct Named {
  Family family;
  std::string_view name;
};

constexpr std::array<Named, 10> kNames = {{
    {Family::chatml, "chatml"},
    {Family::llama2, "llama2"},
    {Family::llama3, "llama3"},
    {Family::llama31, "llama3.1"},
    {Family::zephyr, "zephyr"},
    {Family::mistral_v1, "mistral-v1"},
    {Family::mistral_v3, "mistral-v3"},
    {Family::mistral_v3_tekken, "mistral-v3-tekken"},
    {Family::gemma, "gemma"},
    {Family::phi3, "phi3"},
}};

bool contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

// The length of the whitespace character at s[i] as Python's str.isspace() sees it (ASCII
// \t\n\v\f\r, \x1c-\x1f and space; U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000), or 0.
size_t space_at(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return i + k < s.size() ? uint8_t(s[i + k]) : 0; };
  const uint8_t b0 = byte(0);
  if (b0 == ' ' || (b0 >= 0x09 && b0 <= 0x0D) || (b0 >= 0x1C && b0 <= 0x1F)) return 1;
  if (b0 == 0xC2 && (byte(1) == 0x85 || byte(1) == 0xA0)) return 2;
  if (b0 == 0xE1 && byte(1) == 0x9A && byte(2) == 0x80) return 3;  // U+1680
  if (b0 == 0xE2 && byte(1) == 0x80) {
    const uint8_t b2 = byte(2);
    if ((b2 >= 0x80 && b2 <= 0x8A) || b2 == 0xA8 || b2 == 0xA9 || b2 == 0xAF) return 3;
  }
  if (b0 == 0xE2 && byte(1) == 0x81 && byte(2) == 0x9F) return 3;  // U+205F
  if (b0 == 0xE3 && byte(1) == 0x80 && byte(2) == 0x80) return 3;  // U+3000
  return 0;
}

// Jinja's `| trim` and Python's str.strip(): the templates that use them strip whitespace.
std::string strip(std::string_view s) {
  size_t b = 0;
  while (size_t n = space_at(s, b)) b += n;
  size_t e = s.size();
  while (e > b) {
    size_t start = e - 1;  // the start of the last character
    while (start > b && (uint8_t(s[start]) & 0xC0) == 0x80 && e - start < 3) --start;
    if (space_at(s, start) != e - start) break;
    e = start;
  }
  return std::string(s.substr(b, e - b));
}

// The text of a Jinja string literal's body: \n, \t, \\ and escaped quotes.
std::string unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
  }
  return out;
}

// ChatML templates (SmolLM2, Qwen2.5) write a fixed system turn when the conversation has none,
// as one string literal: '<|im_start|>system\nYou are ...<|im_end|>\n'. The first such literal
// whose body is plain text (no quote or Jinja syntax inside) is that default.
std::string chatml_default_system(std::string_view jinja) {
  constexpr std::string_view open = "<|im_start|>system";
  for (size_t at = jinja.find(open); at != std::string_view::npos; at = jinja.find(open, at + 1)) {
    size_t body = at + open.size();
    if (jinja.compare(body, 1, "\n") == 0)
      body += 1;
    else if (jinja.compare(body, 2, "\\n") == 0)
      body += 2;
    else
      continue;
    const size_t end = jinja.find("<|im_end|>", body);
    if (end == std::string_view::npos) break;
    const std::string_view text = jinja.substr(body, end - body);
    if (text.empty() || text.find_first_of("'\"{}") != std::string_view::npos) continue;
    return unescape(text);
  }
  return {};
}

// Llama 2 and Mistral expect user and assistant turns to alternate, starting with the user.
void check_alternation(std::span<const Message> turns, std::string_view family) {
  for (size_t i = 0; i < turns.size(); ++i) {
    const char* want = i % 2 == 0 ? "user" : "assistant";
    if (turns[i].role != want)
      throw Error("the " + std::string(family) + " chat template needs user and assistant turns " +
                  "to alternate, starting with the user; message " + std::to_string(i + 1) +
                  " is '" + turns[i].role + "'");
  }
}

std::string render_chatml(const Template& t, std::span<const Message> msgs, bool add) {
  std::string out = t.emits_bos ? t.bos_text : "";
  auto turn = [&](std::string_view role, std::string_view content) {
    out.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
  };
  if (!msgs.empty() && msgs[0].role != "system" && !t.default_system.empty())
    turn("system", t.default_system);
  for (const auto& m : msgs) turn(m.role, m.content);
  if (add) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_llama3(const Template& t, std::span<const Message> msgs, bool add) {
  std::string out = t.emits_bos ? t.bos_text : "";
  auto turn = [&](std::string_view role, std::string_view content) {
    out.append("<|start_header_id|>").append(role).append("<|end_header_id|>\n\n");
    out.append(content).append("<|eot_id|>");
  };
  if (t.family == Family::llama31) {
    // Llama 3.1+ always opens with a system turn that carries its knowledge cut-off and a date;
    // the template's default date is used, so the prompt does not depend on the clock.
    std::string system = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";
    if (!msgs.empty() && msgs[0].role == "system") {
      system += strip(msgs[0].content);
      msgs = msgs.subspan(1);
    }
    turn("system", system);
  }
  for (const auto& m : msgs) turn(m.role, strip(m.content));
  if (add) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

std::string render_llama2(const Template& t, std::span<const Message> msgs) {
  std::string system;
  bool has_system = false;
  if (!msgs.empty() && msgs[0].role == "system") {
    has_system = true;
    system = msgs[0].content;
    msgs = msgs.subspan(1);
  }
  check_alternation(msgs, "llama2");
  const std::string bos = t.emits_bos ? t.bos_text : "";
  std::string out;
  for (size_t i = 0; i < msgs.size(); ++i) {
    std::string content = msgs[i].content;
    if (i == 0 && has_system) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
    if (msgs[i].role == "user")
      out.append(bos).append("[INST] ").append(strip(content)).append(" [/INST]");
    else
      out.append(" ").append(strip(content)).append(" ").append(t.eos_text);
  }
  return out;
}

std::string render_mistral(const Template& t, std::span<const Message> msgs) {
  std::string system;
  bool has_system = false;
  if (!msgs.empty() && msgs[0].role == "system") {
    has_system = true;
    system = msgs[0].content;
    msgs = msgs.subspan(1);
  }
  check_alternation(msgs, family_name(t.family));
  const bool tekken = t.family == Family::mistral_v3_tekken;
  const std::string open = tekken ? "[INST]" : "[INST] ";
  const std::string close = t.family == Family::mistral_v1 ? " [/INST]" : "[/INST]";
  const std::string before_answer = tekken ? "" : " ";
  std::string out = t.emits_bos ? t.bos_text : "";
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (msgs[i].role == "assistant") {
      out += before_answer + msgs[i].content + t.eos_text;
      continue;
    }
    // The system prompt travels with the final user message, as Mistral's templates place it.
    const bool last = i + 1 == msgs.size();
    const std::string content =
        has_system && last ? system + "\n\n" + msgs[i].content : msgs[i].content;
    out += open + content + close;
  }
  return out;
}

std::string render_zephyr(const Template& t, std::span<const Message> msgs, bool add) {
  std::string out = t.emits_bos ? t.bos_text : "";
  for (const auto& m : msgs) out += "<|" + m.role + "|>\n" + m.content + t.eos_text + "\n";
  if (add) out += "<|assistant|>\n";
  return out;
}

// Gemma: user and model turns, alternating; a system message has no turn of its own and is
// folded into the first user message (Gemma 3's first_user_prefix); contents are trimmed.
std::string render_gemma(const Template& t, std::span<const Message> msgs, bool add) {
  std::string prefix;
  if (!msgs.empty() && msgs[0].role == "system") {
    if (!t.system_role)
      throw Error(
          "the model's gemma chat template has no system role (it raises 'System role not "
          "supported'); leave out the system message");
    prefix = msgs[0].content + t.system_joiner;
    msgs = msgs.subspan(1);
  }
  check_alternation(msgs, "gemma");
  std::string out = t.emits_bos ? t.bos_text : "";
  for (size_t i = 0; i < msgs.size(); ++i) {
    const std::string role = msgs[i].role == "assistant" ? "model" : msgs[i].role;
    out.append("<start_of_turn>").append(role).append("\n");
    if (i == 0) out += prefix;
    out.append(strip(msgs[i].content)).append("<end_of_turn>\n");
  }
  if (add) out += "<start_of_turn>model\n";
  return out;
}

// Phi-3: <|role|>\n content <|end|>\n for every message, contents as they are. The first
// Phi-3 templates (no system turn) open the assistant's turn after every user message instead.
std::string render_phi3(const Template& t, std::span<const Message> msgs, bool add) {
  std::string out = t.emits_bos ? t.bos_text : "";
  for (const auto& m : msgs) {
    if (m.role == "system") {
      if (!t.system_role)
        throw Error(
            "the model's phi3 chat template has no system role (it has no <|system|> turn); "
            "leave out the system message");
      if (t.skip_empty_system && m.content.empty()) continue;
    }
    if (!t.system_role) {
      if (m.role == "user")
        out.append("<|user|>\n").append(m.content).append("<|end|>\n<|assistant|>\n");
      else
        out.append(m.content).append("<|end|>\n");
      continue;
    }
    out.append("<|").append(m.role).append("|>\n").append(m.content).append("<|end|>\n");
  }
  if (!t.system_role) return out;
  if (add)
    out += "<|assistant|>\n";
  else if (t.eos_at_end)
    out += t.eos_text;
  return out;
}

// Gemma 3 folds the system message in with `messages[0]['content'] + '<joiner>'`; the joiner is
// that string literal's text.
std::string gemma_system_joiner(std::string_view jinja) {
  constexpr std::string_view marker = "first_user_prefix = messages[0]['content'] + ";
  const size_t at = jinja.find(marker);
  if (at == std::string_view::npos) return "\n\n";
  const size_t open = at + marker.size();
  if (open >= jinja.size() || (jinja[open] != '\'' && jinja[open] != '"')) return "\n\n";
  const size_t close = jinja.find(jinja[open], open + 1);
  if (close == std::string_view::npos) return "\n\n";
  return unescape(jinja.substr(open + 1, close - open - 1));
}

}  // namespace

std::string_view family_name(Family family) {
  for (const auto& n : kNames)
    if (n.family == family) return n.name;
  return "unknown";
}

std::optional<Family> family_from_name(std::string_view name) {
  for (const auto& n : kNames)
    if (n.name == name) return n.family;
  return std::nullopt;
}

std::string family_names() {
  std::string s;
  for (const auto& n : kNames) s += (s.empty() ? "" : ", ") + std::string(n.name);
  return s;
}

Family detect_family(std::string_view j) {
  if (contains(j, "<|im_start|>")) return Family::chatml;
  if (contains(j, "<|start_header_id|>") && contains(j, "<|end_header_id|>"))
    return contains(j, "Cutting Knowledge Date") ? Family::llama31 : Family::llama3;
  // Mistral v7's [SYSTEM_PROMPT] format is not rendered; it falls through to the error.
  if (contains(j, "[INST]") && !contains(j, "[SYSTEM_PROMPT]")) {
    if (contains(j, "<<SYS>>")) return Family::llama2;
    if (contains(j, " [/INST]")) return Family::mistral_v1;
    if (contains(j, "[INST]'") || contains(j, "[INST]\"")) return Family::mistral_v3_tekken;
    return Family::mistral_v3;
  }
  if (contains(j, "<start_of_turn>")) return Family::gemma;
  // Phi-3 has <|user|> and <|assistant|> as Zephyr has, but ends turns with <|end|>.
  if (contains(j, "<|assistant|>") && contains(j, "<|end|>")) return Family::phi3;
  if (contains(j, "<|user|>") && contains(j, "<|assistant|>")) return Family::zephyr;
  std::string start(j.substr(0, 48));
  for (char& c : start)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  throw Error("the model's chat template is not one apr recognises (it begins \"" + start +
              "\"); choose one with --chat-template NAME: " + family_names());
}

Template make_template(std::string_view jinja, std::optional<Family> forced, std::string bos_text,
                       std::string eos_text) {
  Template t;
  if (forced) {
    t.family = *forced;
  } else if (jinja.empty()) {
    throw Error(
        "the model has no chat template (tokenizer.chat_template); choose one with "
        "--chat-template NAME: " +
        family_names());
  } else {
    t.family = detect_family(jinja);
  }
  // Without a template to read, the family's usual habit decides whether BOS is written.
  t.emits_bos = jinja.empty() ? t.family != Family::chatml && t.family != Family::zephyr &&
                                    t.family != Family::phi3
                              : contains(jinja, "bos_token");
  t.bos_text = std::move(bos_text);
  t.eos_text = std::move(eos_text);
  if (t.family == Family::chatml) t.default_system = chatml_default_system(jinja);
  // The details of a family are read from the template only when it is of that family (a
  // forced family on a foreign template keeps its defaults).
  bool own_template = !jinja.empty();
  if (forced && own_template) {
    try {
      own_template = detect_family(jinja) == *forced;
    } catch (const Error&) {
      own_template = false;
    }
  }
  if (t.family == Family::gemma && own_template) {
    // Gemma 2's template refuses a system message; Gemma 3's folds it into the first turn.
    t.system_role = !contains(jinja, "System role not supported");
    t.system_joiner = gemma_system_joiner(jinja);
  }
  if (t.family == Family::phi3 && own_template) {
    // "<|" + message['role'] + "|>" (Phi-3-small, -vision) writes any role, system too.
    t.system_role = contains(jinja, "<|system|>") || contains(jinja, "'<|' + message['role']");
    t.skip_empty_system = contains(jinja, "message['role'] == 'system' and message['content']");
    t.eos_at_end = contains(jinja, "eos_token");
  }
  return t;
}

std::string render(const Template& t, std::span<const Message> messages, bool add_assistant) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant")
      throw Error("chat message " + std::to_string(i + 1) + " has role '" + role +
                  "'; the roles are system, user and assistant");
    if (role == "system" && i != 0)
      throw Error("chat message " + std::to_string(i + 1) +
                  " is a system message; only the first may be");
  }
  switch (t.family) {
    case Family::chatml:
      return render_chatml(t, messages, add_assistant);
    case Family::llama3:
    case Family::llama31:
      return render_llama3(t, messages, add_assistant);
    case Family::llama2:
      return render_llama2(t, messages);
    case Family::zephyr:
      return render_zephyr(t, messages, add_assistant);
    case Family::mistral_v1:
    case Family::mistral_v3:
    case Family::mistral_v3_tekken:
      return render_mistral(t, messages);
    case Family::gemma:
      return render_gemma(t, messages, add_assistant);
    case Family::phi3:
      return render_phi3(t, messages, add_assistant);
  }
  throw Error("unknown chat template family");
}

}  // namespace apr::chat
