// SPDX-License-Identifier: MIT
#include "chat_prompt.hpp"

#include "cli.hpp"

namespace apr::cli {

std::optional<chat::Family> parse_chat_template_option(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (auto f = chat::family_from_name(name)) return f;
  throw UsageError("--chat-template: unknown template '" + name +
                   "'; known: " + chat::family_names());
}

chat::Template model_chat_template(const Model& model, std::optional<chat::Family> forced) {
  const Tokenizer& tok = model.tokenizer();
  const std::string jinja(model.file().get_string("tokenizer.chat_template").value_or(""));
  const auto text = [&](int32_t id) {
    return id < 0 ? std::string() : std::string(tok.token_text(id));
  };
  return chat::make_template(jinja, forced, text(tok.bos_id()), text(tok.eos_id()));
}

std::vector<int32_t> chat_prompt_tokens(const Model& model, const chat::Template& tmpl,
                                        const std::string& user,
                                        const std::optional<std::string>& system,
                                        std::string* formatted) {
  std::vector<chat::Message> messages;
  if (system) messages.push_back({"system", *system});
  messages.push_back({"user", user});
  const std::string text = chat::render(tmpl, messages, true);
  if (formatted) *formatted = text;
  // The template wrote every special token itself (Hugging Face's convention).
  return model.tokenizer().encode(text, /*add_special=*/false, /*parse_special=*/true);
}

std::string chat_template_option_help() {
  return "format with this chat template instead of the model's tokenizer.chat_template: " +
         chat::family_names();
}

}  // namespace apr::cli
