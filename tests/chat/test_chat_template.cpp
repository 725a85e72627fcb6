// SPDX-License-Identifier: MIT
// Chat templates: family detection on the templates real models ship, and the rendered prompt
// of each family against strings written out by hand from the Jinja templates' semantics.
#include <catch2/catch.hpp>

#include <vector>

#include "chat/chat_template.hpp"
#include "common/error.hpp"

using namespace apr::chat;

namespace {

// The SmolLM2-135M-Instruct template as stored in its GGUF (newlines are real newlines there).
const std::string kSmolLM2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\n' }}{% endif %}";

// Excerpts of Qwen2.5-Instruct's template: a system turn with tools first (not plain text),
// then the plain default.
const std::string kQwen25 =
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}"
    "{{- messages[0]['content'] }}{%- endif %}{%- else %}{%- if messages[0]['role'] == 'system' "
    "%}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- "
    "'<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}{%- endif %}{%- endif %}";

const std::string kLlama2 =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if loop.index0 == 0 "
    "and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
    "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}"
    "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' "
    "[/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
    "eos_token }}{% endif %}{% endfor %}";

const std::string kLlama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif "
    "%}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

const std::string kLlama31 =
    "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" "
    "%}{%- endif %}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting "
    "Knowledge Date: December 2023\\n\" }}{{- \"Today Date: \" + date_string + \"\\n\\n\" }}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
    "message['content'] | trim + '<|eot_id|>' }}";

const std::string kZephyr =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ "
    "'<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' "
    "%}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last "
    "and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

const std::string kMistralV1 =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' "
    "+ message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% endif %}{% endfor %}";

const std::string kMistralV3 =
    "{{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}{%- if "
    "loop.last and system_message is defined %}{{- '[INST] ' + system_message + '\\n\\n' + "
    "message['content'] + '[/INST]' }}{%- else %}{{- '[INST] ' + message['content'] + '[/INST]' "
    "}}{%- endif %}{%- elif message['role'] == 'assistant' %}{{- ' ' + message['content'] + "
    "eos_token}}{%- endif %}{%- endfor %}";

const std::string kMistralTekken =
    "{{- bos_token }}{%- for message in loop_messages %}{%- if message['role'] == 'user' %}{{- "
    "'[INST]' + message['content'] + '[/INST]' }}{%- elif message['role'] == 'assistant' %}{{- "
    "message['content'] + eos_token}}{%- endif %}{%- endfor %}";

// Gemma 2 (google/gemma-2-2b-it): no system role, alternation enforced, trimmed content.
const std::string kGemma2 =
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
    "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% "
    "set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ "
    "'<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor "
    "%}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

// Excerpt of Gemma 3's: the system message becomes a prefix of the first user turn.
const std::string kGemma3 =
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if "
    "messages[0]['content'] is string -%}\n        {%- set first_user_prefix = "
    "messages[0]['content'] + '\\n\\n' -%}\n    {%- else -%}\n ... {{ '<start_of_turn>' + role + "
    "'\\n' + (first_user_prefix if loop.first else \"\") }}";

// Phi-3.5-mini-instruct; Phi-3-mini-4k-instruct's is the same without "and message['content']".
const std::string kPhi35 =
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] "
    "%}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' "
    "%}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == "
    "'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor "
    "%}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

// The first Phi-3-mini template: no system turn.
const std::string kPhi3Original =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') "
    "%}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% "
    "elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif "
    "%}{% endfor %}";

Template for_model(const std::string& jinja, std::string bos = "<s>", std::string eos = "</s>") {
  return make_template(jinja, std::nullopt, std::move(bos), std::move(eos));
}

const std::vector<Message> kTwoTurns = {{"system", "Be brief."},
                                        {"user", "Hi"},
                                        {"assistant", "Hello!"},
                                        {"user", "Capital of France?"}};

}  // namespace

TEST_CASE("families are recognised from the templates models ship") {
  CHECK(detect_family(kSmolLM2) == Family::chatml);
  CHECK(detect_family(kQwen25) == Family::chatml);
  CHECK(detect_family(kLlama2) == Family::llama2);
  CHECK(detect_family(kLlama3) == Family::llama3);
  CHECK(detect_family(kLlama31) == Family::llama31);
  CHECK(detect_family(kZephyr) == Family::zephyr);
  CHECK(detect_family(kMistralV1) == Family::mistral_v1);
  CHECK(detect_family(kMistralV3) == Family::mistral_v3);
  CHECK(detect_family(kMistralTekken) == Family::mistral_v3_tekken);
  CHECK(detect_family(kGemma2) == Family::gemma);
  CHECK(detect_family(kGemma3) == Family::gemma);
  CHECK(detect_family(kPhi35) == Family::phi3);
  CHECK(detect_family(kPhi3Original) == Family::phi3);
}

TEST_CASE("an unknown template is an error that names the override") {
  // Command R's format is not one apr renders.
  const std::string command_r =
      "{{ bos_token }}{% for message in messages %}{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' }}";
  REQUIRE_THROWS_AS(detect_family(command_r), apr::Error);
  REQUIRE_THROWS_WITH(detect_family(command_r),
                      Catch::Contains("--chat-template") && Catch::Contains("chatml") &&
                          Catch::Contains("gemma, phi3") && Catch::Contains("{{ bos_token }}"));
  REQUIRE_THROWS_WITH(make_template("", std::nullopt, "<s>", "</s>"),
                      Catch::Contains("no chat template"));
  // Mistral v7 writes [SYSTEM_PROMPT], a format not rendered: refused, not mis-rendered.
  REQUIRE_THROWS_AS(detect_family("[SYSTEM_PROMPT]{{x}}[/SYSTEM_PROMPT][INST]"), apr::Error);
}

TEST_CASE("names round-trip for --chat-template") {
  for (auto f : {Family::chatml, Family::llama2, Family::llama3, Family::llama31, Family::zephyr,
                 Family::mistral_v1, Family::mistral_v3, Family::mistral_v3_tekken, Family::gemma,
                 Family::phi3}) {
    REQUIRE(family_from_name(family_name(f)) == f);
  }
  CHECK_FALSE(family_from_name("ChatML"));
  CHECK(family_names().find("mistral-v3-tekken") != std::string::npos);
}

TEST_CASE("ChatML with the template's default system prompt") {
  const Template t = for_model(kSmolLM2, "<|im_start|>", "<|im_end|>");
  CHECK_FALSE(t.emits_bos);
  const std::vector<Message> one = {{"user", "What is the capital of France?"}};
  CHECK(render(t, one, true) ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n");
  // A system message of the user's replaces the default.
  CHECK(render(t, kTwoTurns, true) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nCapital of "
        "France?<|im_end|>\n<|im_start|>assistant\n");
  CHECK(render(t, one, false) ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n");
  CHECK(render(t, {}, true) == "<|im_start|>assistant\n");
}

TEST_CASE("ChatML: Qwen2.5's escaped default system prompt is found past the tools branch") {
  const Template t = for_model(kQwen25, "", "<|im_end|>");
  CHECK(t.default_system == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  const std::vector<Message> one = {{"user", "Hi"}};
  CHECK(render(t, one, true) ==
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("Llama 2: BOS per exchange, <<SYS>> inside the first instruction, stripped content") {
  const Template t = for_model(kLlama2);
  CHECK(render(t, kTwoTurns, true) ==
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Capital of "
        "France? [/INST]");
  const std::vector<Message> padded = {{"user", "  Hi \n"}};
  CHECK(render(t, padded, true) == "<s>[INST] Hi [/INST]");
  const std::vector<Message> two_users = {{"user", "a"}, {"user", "b"}};
  REQUIRE_THROWS_WITH(render(t, two_users, true), Catch::Contains("alternate"));
}

TEST_CASE("Llama 3: header turns, trimmed content, BOS once") {
  const Template t = for_model(kLlama3, "<|begin_of_text|>", "<|eot_id|>");
  CHECK(render(t, kTwoTurns, true) ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe "
        "brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nCapital of France?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_CASE("Llama 3.1: the system turn always carries the knowledge dates") {
  const Template t = for_model(kLlama31, "<|begin_of_text|>", "<|eot_id|>");
  const std::vector<Message> one = {{"user", "Hi"}};
  CHECK(render(t, one, true) ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user"
        "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  const std::vector<Message> sys = {{"system", " Be brief. "}, {"user", "Hi"}};
  CHECK(render(t, sys, false) ==
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user"
        "<|end_header_id|>\n\nHi<|eot_id|>");
}

TEST_CASE("Zephyr: role tags, EOS after every turn") {
  const Template t = for_model(kZephyr);
  CHECK_FALSE(t.emits_bos);
  CHECK(render(t, kTwoTurns, true) ==
        "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\n"
        "Capital of France?</s>\n<|assistant|>\n");
}

TEST_CASE("Mistral: the three spacing variants, system prompt with the final user message") {
  CHECK(render(for_model(kMistralV1), kTwoTurns, true) ==
        "<s>[INST] Hi [/INST] Hello!</s>[INST] Be brief.\n\nCapital of France? [/INST]");
  CHECK(render(for_model(kMistralV3), kTwoTurns, true) ==
        "<s>[INST] Hi[/INST] Hello!</s>[INST] Be brief.\n\nCapital of France?[/INST]");
  CHECK(render(for_model(kMistralTekken), kTwoTurns, true) ==
        "<s>[INST]Hi[/INST]Hello!</s>[INST]Be brief.\n\nCapital of France?[/INST]");
}

TEST_CASE(
    "the template named by --chat-template overrides the model's or stands in for a missing one") {
  const Template t = make_template(kSmolLM2, Family::zephyr, "<s>", "</s>");
  const std::vector<Message> one = {{"user", "Hi"}};
  CHECK(render(t, one, true) == "<|user|>\nHi</s>\n<|assistant|>\n");
  const Template bare = make_template("", Family::chatml, "", "<|im_end|>");
  CHECK(render(bare, one, true) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("roles are checked") {
  const Template t = for_model(kSmolLM2);
  const std::vector<Message> tool = {{"tool", "x"}};
  REQUIRE_THROWS_WITH(render(t, tool, true), Catch::Contains("role 'tool'"));
  const std::vector<Message> late_system = {{"user", "x"}, {"system", "y"}};
  REQUIRE_THROWS_WITH(render(t, late_system, true), Catch::Contains("only the first"));
}

TEST_CASE("Gemma 3: model turns, system folded into the first user turn, trimmed content") {
  const Template t = for_model(kGemma3, "<bos>", "<eos>");
  CHECK(t.emits_bos);
  CHECK(t.system_joiner == "\n\n");
  const std::vector<Message> one = {{"user", " What is the capital of France?\n"}};
  CHECK(render(t, one, true) ==
        "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n"
        "<start_of_turn>model\n");
  CHECK(render(t, kTwoTurns, true) ==
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
        "Hello!<end_of_turn>\n<start_of_turn>user\nCapital of France?<end_of_turn>\n"
        "<start_of_turn>model\n");
  CHECK(render(t, one, false) ==
        "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n");
  // Python's str.strip(), which Jinja's trim is: Unicode spaces go too.
  const std::vector<Message> spaced = {{"user", "\xE3\x80\x80Hi\xC2\xA0\x1F"}};
  CHECK(render(t, spaced, true) ==
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
  const std::vector<Message> two_users = {{"user", "a"}, {"user", "b"}};
  REQUIRE_THROWS_WITH(render(t, two_users, true), Catch::Contains("alternate"));

  // A conversion that joins with one newline keeps it.
  std::string one_newline = kGemma3;
  one_newline.replace(one_newline.find("'\\n\\n'"), 6, "'\\n'");
  const Template t1 = for_model(one_newline, "<bos>", "<eos>");
  CHECK(t1.system_joiner == "\n");
  const std::vector<Message> sys = {{"system", "S"}, {"user", "Hi"}};
  CHECK(render(t1, sys, false) == "<bos><start_of_turn>user\nS\nHi<end_of_turn>\n");
}

TEST_CASE("Gemma 2 has no system role") {
  const Template t = for_model(kGemma2, "<bos>", "<eos>");
  CHECK_FALSE(t.system_role);
  const std::vector<Message> one = {{"user", "Hi"}};
  CHECK(render(t, one, true) ==
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
  REQUIRE_THROWS_WITH(render(t, kTwoTurns, true), Catch::Contains("no system role"));
  // Forced without a template, gemma behaves as Gemma 3 (system folded in, BOS written).
  const Template bare = make_template("", Family::gemma, "<bos>", "<eos>");
  const std::vector<Message> sys = {{"system", "S"}, {"user", "Hi"}};
  CHECK(render(bare, sys, true) ==
        "<bos><start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n");
}

TEST_CASE("Phi-3: role tags closed by <|end|>, EOS without generation prompt") {
  const Template t = for_model(kPhi35, "<s>", "<|endoftext|>");
  CHECK_FALSE(t.emits_bos);
  CHECK(render(t, kTwoTurns, true) ==
        "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
        "<|user|>\nCapital of France?<|end|>\n<|assistant|>\n");
  const std::vector<Message> answered = {{"system", ""}, {"user", " Hi "}, {"assistant", "Yo"}};
  CHECK(render(t, answered, false) ==
        "<|user|>\n Hi <|end|>\n<|assistant|>\nYo<|end|>\n<|endoftext|>");
  // Phi-3-mini-4k-instruct writes even an empty system turn.
  std::string mini = kPhi35;
  mini.erase(mini.find(" and message['content']"), 23);
  CHECK(render(for_model(mini, "<s>", "<|endoftext|>"), answered, true) ==
        "<|system|>\n<|end|>\n<|user|>\n Hi <|end|>\n<|assistant|>\nYo<|end|>\n<|assistant|>\n");

  const Template original = for_model(kPhi3Original, "<s>", "<|endoftext|>");
  CHECK(original.emits_bos);
  const std::vector<Message> one = {{"user", "Hi"}};
  CHECK(render(original, one, true) == "<s><|user|>\nHi<|end|>\n<|assistant|>\n");
  REQUIRE_THROWS_WITH(render(original, kTwoTurns, true), Catch::Contains("no system role"));
  // Forced on another model's template, phi3 keeps its own defaults.
  const Template forced = make_template(kSmolLM2, Family::phi3, "<s>", "<|endoftext|>");
  CHECK(render(forced, kTwoTurns, true).starts_with("<|system|>\nBe brief.<|end|>\n"));
}
