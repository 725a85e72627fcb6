// SPDX-License-Identifier: MIT
// apr: the command line. Global options may stand before or after the command, so
// `apr --backend=cuda run M` and `apr run M --backend=cuda` mean the same.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <iostream>
#include <string_view>

#include "cli.hpp"
#include "common/error.hpp"
#include "host/backend.hpp"

namespace apr::cli {
int cmd_plugin_check(Context& ctx, const std::vector<std::string>& args);  // cmd_plugin_check.cpp
}

namespace {

using namespace apr::cli;

struct Verb {
  std::string_view name;
  VerbFn fn;
  std::string_view summary;
};

constexpr Verb kVerbs[] = {
    {"run", cmd_run, "generate text from a prompt (default model: SmolLM2-135M-Instruct)"},
    {"chat", cmd_chat, "talk with a model on the terminal, using its chat template"},
    {"info", cmd_info, "show a model's architecture, hyper-parameters, tensors and tokenizer"},
    {"plugins", cmd_plugins, "list backend plugins found, and every refused file with its reason"},
    {"plugin-check", cmd_plugin_check, "check a backend plugin against the plugin ABI"},
    {"trace", cmd_trace, "write the tensors of every stage of a forward pass as APRT files"},
    {"diff", cmd_diff, "compare two APRT files or trace directories value by value"},
    {"bisect", cmd_bisect, "name the first layer and stage where two backends diverge"},
    {"bench", cmd_bench, "measure prefill and decode speed"},
    {"perplexity", cmd_perplexity,
     "perplexity over a text as llama-perplexity computes it; KL between two backends"},
};

void print_help(const po::options_description& global) {
  std::cout <<
      R"(apr - run GGUF transformer models (llama, qwen2) on backend plugins, and trace them

Usage: apr [global options] <command> [command options]

Commands:
)";
  size_t width = 0;  // the longest verb and two spaces: the summaries line up
  for (const auto& v : kVerbs) width = std::max(width, v.name.size() + 2);
  for (const auto& v : kVerbs)
    std::cout << "  " << v.name << std::string(width - v.name.size(), ' ') << v.summary << "\n";
  std::cout << "\n"
            << global << R"(
Examples:
  apr run --chat -p "What is the capital of France?"     (the default model, see 'apr run --help')
  apr chat                                               (talk; Ctrl-C stops an answer, Ctrl-D quits)
  apr run model.gguf --prompt "Once upon a time" --max-tokens 32
  apr --backend=cpu run -m model.gguf -p "2+2=" -n 8 --temperature 0 --json
  apr plugins
  apr trace model.gguf --save-tensor all --save-tensor-layers 0..2
  apr bisect model.gguf --backend-a cpu --backend-b vulkan

'apr <command> --help' lists a command's options.
Exit status: 0 success, 1 diff/bisect found a divergence, 2 error.
)";
}

int dispatch(int argc, char** argv) {
  CommandLine cl = parse_command_line(std::vector<std::string>(argv + 1, argv + argc));
  const GlobalOptions& g = cl.global;
  po::options_description global("Global options (before or after the command)");
  GlobalOptions shown;  // only printed
  add_global_options(global, shown);
  global.add_options()("help,h", "show this help")("version", "print the version");

  auto logger = spdlog::stderr_color_mt("apr");
  logger->set_pattern("apr: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(g.verbose ? spdlog::level::debug : spdlog::level::warn);

  if (cl.version) {
    std::cout << "apr " APR_VERSION_STRING " (plugin ABI " << APR_ABI_MAJOR << "." << APR_ABI_MINOR
              << ")\n";
    return kExitOk;
  }
  if (cl.verb.empty()) {
    print_help(global);
    return cl.help ? kExitOk : kExitError;
  }
  const std::string verb = cl.verb;
  std::vector<std::string>& rest = cl.args;
  if (cl.help) rest.push_back("--help");
  if (verb == "help") {
    if (rest.empty()) {
      print_help(global);
      return kExitOk;
    }
    const std::string topic = rest.front();
    for (const auto& v : kVerbs)
      if (v.name == topic) {
        Context ctx(g);
        return v.fn(ctx, {"--help"});
      }
    throw UsageError("unknown command '" + topic + "'");
  }
  for (const auto& v : kVerbs) {
    if (v.name == verb) {
      Context ctx(g);
      return v.fn(ctx, rest);
    }
  }
  if (!verb.empty() && verb[0] == '-') throw UsageError("unknown option '" + verb + "'");
  throw UsageError("unknown command '" + verb + "'");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "apr: error: " << e.what() << " (see 'apr --help')\n";
  } catch (const apr::Error& e) {
    std::cerr << "apr: error: " << e.what() << "\n";
  } catch (const apr::BackendError& e) {
    std::cerr << "apr: backend error: " << e.what() << "\n";
  } catch (const std::bad_alloc&) {
    std::cerr << "apr: error: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "apr: internal error: " << e.what() << "\n";
  }
  return kExitError;
}
