// SPDX-License-Identifier: MIT
// Chat templates: turning a conversation into the prompt text a chat model was trained on.
//
// GGUF files carry the Hugging Face Jinja template in `tokenizer.chat_template`. No C++ Jinja
// engine is packaged in Debian 12, so apr recognises the template's family from marker strings
// and renders that family's format itself (see README, "Chat templates"). Rendering follows the
// Hugging Face convention: the text includes the BOS/EOS texts wherever the template writes
// `bos_token`/`eos_token`, and is tokenized without adding special tokens.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace apr::chat {

enum class Family {
  chatml,             // <|im_start|>role\n...<|im_end|>\n (Qwen2, SmolLM2, ...)
  llama2,             // <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] ... </s>
  llama3,             // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  llama31,            // llama3 plus the "Cutting Knowledge Date" system header of Llama 3.1+
  zephyr,             // <|user|>\n...</s>\n<|assistant|>\n
  mistral_v1,         // <s>[INST] user [/INST] answer</s>
  mistral_v3,         // <s>[INST] user[/INST] answer</s>
  mistral_v3_tekken,  // <s>[INST]user[/INST]answer</s>
  gemma,              // <bos><start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n
  phi3,               // <|user|>\n...<|end|>\n<|assistant|>\n
};

struct Message {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

struct Template {
  Family family = Family::chatml;
  bool emits_bos = false;  // the template writes bos_token at the start of the prompt
  std::string bos_text;    // the text of the model's BOS and EOS tokens
  std::string eos_text;
  std::string default_system;  // the system prompt a template writes when none is given
  // gemma, phi3: whether the template takes a system message at all (Gemma 2's raises an
  // error; the first Phi-3 templates have no <|system|> turn and open the assistant's turn
  // right after each user message).
  bool system_role = true;
  // gemma: what joins a system message to the first user message it is folded into (Gemma 3:
  // "\n\n"; some GGUF conversions write "\n").
  std::string system_joiner = "\n\n";
  bool skip_empty_system = false;  // phi3: Phi-3.5 writes no <|system|> turn for empty content
  bool eos_at_end = false;         // phi3: eos_token closes a prompt without generation prompt
};

// "chatml", "llama2", ... as accepted by --chat-template.
std::string_view family_name(Family family);
std::optional<Family> family_from_name(std::string_view name);
// Every accepted name, comma-separated, for error messages and --help.
std::string family_names();

// Recognises the family of a Jinja template. Throws apr::Error naming the template's start and
// the --chat-template names when it matches none.
Family detect_family(std::string_view jinja);

// A Template from the model's metadata: `jinja` may be empty when `forced` names the family.
// Throws apr::Error when neither gives a family.
Template make_template(std::string_view jinja, std::optional<Family> forced, std::string bos_text,
                       std::string eos_text);

// The prompt text for `messages`, followed by the opening of an assistant turn when
// `add_assistant` is set. Throws apr::Error on a role the family cannot express (for example a
// system message anywhere but first).
std::string render(const Template& tmpl, std::span<const Message> messages, bool add_assistant);

}  // namespace apr::chat
