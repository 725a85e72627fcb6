// SPDX-License-Identifier: MIT
// Test helper: renders a conversation with apr's chat templates, for the Jinja2 cross-check.
//
//   chat_render_cli [--template FILE] [--family NAME] [--bos TEXT] [--eos TEXT]
//                   [--no-generation-prompt]
//
// Each stdin line is one message, "ROLE<TAB>HEX" (the content hex-encoded). stdout is the
// rendered prompt, hex-encoded, on one line. An apr::Error (an unrecognised template, a role the
// family cannot express) is its one line on stderr and exit status 2.
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "chat/chat_template.hpp"
#include "common/error.hpp"
#include "common/hex_text.hpp"

int main(int argc, char** argv) {
  std::string jinja, family, bos, eos;
  bool add_assistant = true;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--template" && has_value) {
      std::ifstream in(argv[++i], std::ios::binary);
      if (!in) {
        std::cerr << "chat_render_cli: cannot read " << argv[i] << "\n";
        return 2;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      jinja = ss.str();
    } else if (arg == "--family" && has_value) {
      family = argv[++i];
    } else if (arg == "--bos" && has_value) {
      bos = argv[++i];
    } else if (arg == "--eos" && has_value) {
      eos = argv[++i];
    } else if (arg == "--no-generation-prompt") {
      add_assistant = false;
    } else {
      std::cerr << "chat_render_cli: bad argument " << arg << "\n";
      return 2;
    }
  }
  std::vector<apr::chat::Message> messages;
  std::string line;
  while (std::getline(std::cin, line)) {
    const size_t tab = line.find('\t');
    apr::chat::Message m;
    if (tab == std::string::npos ||
        !apr_test::from_hex(std::string_view(line).substr(tab + 1), m.content)) {
      std::cerr << "chat_render_cli: input line is not ROLE<TAB>HEX\n";
      return 2;
    }
    m.role = line.substr(0, tab);
    messages.push_back(std::move(m));
  }
  try {
    std::optional<apr::chat::Family> forced;
    if (!family.empty()) {
      forced = apr::chat::family_from_name(family);
      if (!forced) throw apr::Error("unknown family " + family);
    }
    const apr::chat::Template t = apr::chat::make_template(jinja, forced, bos, eos);
    std::cout << apr::chat::family_name(t.family) << "\t"
              << apr_test::to_hex(apr::chat::render(t, messages, add_assistant)) << "\n";
  } catch (const apr::Error& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  return 0;
}
