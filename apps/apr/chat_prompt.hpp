// SPDX-License-Identifier: MIT
// What `apr run --chat` and `apr chat` share: the chat template chosen for a model.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "chat/chat_template.hpp"
#include "model/model.hpp"

namespace apr::cli {

// --chat-template NAME checked before anything is loaded: nullopt for "" (use the model's).
// Throws UsageError naming the accepted names.
std::optional<chat::Family> parse_chat_template_option(const std::string& name);

// The model's tokenizer.chat_template, or `forced`; throws apr::Error when neither gives one.
chat::Template model_chat_template(const Model& model, std::optional<chat::Family> forced);

// One user message (after an optional system message) formatted by `tmpl` and tokenized as the
// template wrote it: special tokens parsed, none added. `formatted` receives the text.
std::vector<int32_t> chat_prompt_tokens(const Model& model, const chat::Template& tmpl,
                                        const std::string& user,
                                        const std::optional<std::string>& system,
                                        std::string* formatted = nullptr);

// Help text of --chat-template.
std::string chat_template_option_help();

}  // namespace apr::cli
