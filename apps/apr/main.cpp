// apr: the command line. Global options may stand before or after the command, so
// `apr --backend=cuda run M` and `apr run M --backend=cuda` mean the same.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

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
    {"run", cmd_run, "generate text from a prompt"},
    {"info", cmd_info, "show a model's architecture, hyper-parameters, tensors and tokenizer"},
    {"plugins", cmd_plugins, "list backend plugins found, and every refused file with its reason"},
    {"plugin-check", cmd_plugin_check, "check a backend plugin against the plugin ABI"},
    {"trace", cmd_trace, "write the tensors of every stage of a forward pass as APRT files"},
    {"diff", cmd_diff, "compare two APRT files or trace directories value by value"},
    {"bisect", cmd_bisect, "name the first layer and stage where two backends diverge"},
    {"bench", cmd_bench, "measure prefill and decode speed"},
};

void print_help(const po::options_description& global) {
  std::cout <<
      R"(apr - run GGUF transformer models (llama, qwen2) on backend plugins, and trace them

Usage: apr [global options] <command> [command options]

Commands:
)";
  for (const auto& v : kVerbs)
    std::cout << "  " << v.name << std::string(v.name.size() < 9 ? 9 - v.name.size() : 1, ' ')
              << v.summary << "\n";
  std::cout << "\n"
            << global << R"(
Examples:
  apr run model.gguf --prompt "Once upon a time" --max-tokens 32
  apr --backend=cpu run model.gguf --prompt "2+2=" --temperature 0 --json
  apr plugins
  apr trace model.gguf --save-tensor all --save-tensor-layers 0..2
  apr bisect model.gguf --backend-a cpu --backend-b vulkan

'apr <command> --help' lists a command's options.
Exit status: 0 success, 1 diff/bisect found a divergence, 2 error.
)";
}

int dispatch(int argc, char** argv) {
  GlobalOptions g;
  po::options_description global("Global options (before or after the command)");
  add_global_options(global, g);
  global.add_options()("help,h", "show this help")("version", "print the version");

  po::variables_map vm;
  std::vector<std::string> rest;
  try {
    const auto style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    auto parsed =
        po::command_line_parser(argc, argv).options(global).style(style).allow_unregistered().run();
    po::store(parsed, vm);
    po::notify(vm);
    rest = po::collect_unrecognized(parsed.options, po::include_positional);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }

  auto logger = spdlog::stderr_color_mt("apr");
  logger->set_pattern("apr: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(g.verbose ? spdlog::level::debug : spdlog::level::warn);

  if (vm.count("version")) {
    std::cout << "apr " APR_VERSION_STRING " (plugin ABI " << APR_ABI_MAJOR << "." << APR_ABI_MINOR
              << ")\n";
    return kExitOk;
  }
  if (rest.empty()) {
    print_help(global);
    return vm.count("help") ? kExitOk : kExitError;
  }
  const std::string verb = rest.front();
  rest.erase(rest.begin());
  if (vm.count("help")) rest.push_back("--help");
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
