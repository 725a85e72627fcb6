// SPDX-License-Identifier: MIT
#include "chat/chat_template.hpp"

#include <array>

#include "common/error.hpp"

namespace apr::chat {
namespace {

struct Named {
  Family family;
  std::string_view name;
};

constexpr std::array<Named, 8> kNames = {{
    {Family::chatml, "chatml"},
    {Family::llama2, "llama2"},
    {Family::llama3, "llama3"},
    {Family::llama31, "llama3.1"},
    {Family::zephyr, "zephyr"},
    {Family::mistral_v1, "mistral-v1"},
    {Family::mistral_v3, "mistral-v3"},
    {Family::mistral_v3_tekken, "mistral-v3-tekken"},
}};

bool contains(std::string_view text, std::string_view what) {
  return text.find(what) != std::string_view::npos;
}

// Jinja's `| trim` and Python's str.strip(): the templates that use them strip whitespace.
std::string strip(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
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
      out += bos + "[INST] " + strip(content) + " [/INST]";
    else
      out += " " + strip(content) + " " + t.eos_text;
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
  // Phi-3 also has <|user|> and <|assistant|> but ends turns with <|end|>.
  if (contains(j, "<|user|>") && contains(j, "<|assistant|>") && !contains(j, "<|end|>"))
    return Family::zephyr;
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
  t.emits_bos = jinja.empty() ? t.family != Family::chatml && t.family != Family::zephyr
                              : contains(jinja, "bos_token");
  t.bos_text = std::move(bos_text);
  t.eos_text = std::move(eos_text);
  if (t.family == Family::chatml) t.default_system = chatml_default_system(jinja);
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
  }
  throw Error("unknown chat template family");
}

}  // namespace apr::chat
