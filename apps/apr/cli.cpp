#include "cli.hpp"

#include <charconv>
#include <filesystem>
#include <iostream>

#include "common/error.hpp"

namespace apr::cli {

host::PluginHost& Context::plugins() {
  if (!host_) {
    host::SearchOptions options;
    for (const auto& d : global.plugin_dirs) options.plugin_dirs.emplace_back(d);
    host_ = std::make_unique<host::PluginHost>(std::move(options));
  }
  return *host_;
}

void add_global_options(po::options_description& desc, GlobalOptions& g) {
  desc.add_options()(
      "backend", po::value(&g.backend)->default_value("auto"),
      "backend plugin to run on: cpu, vulkan (alias wgpu), cuda, or auto (the best usable: a "
      "CUDA or Vulkan GPU, else cpu; see 'apr plugins')")(
      "plugin-dir", po::value(&g.plugin_dirs)->composing(),
      "search this directory for plugins first (repeatable); then APR_PLUGIN_PATH "
      "(colon-separated), the installed plugin directory, and the directory beside apr")(
      "device", po::value(&g.device)->default_value(0),
      "device index within the backend "
      "(see 'apr plugins')")("threads", po::value(&g.threads)->default_value(0),
                             "CPU threads a backend may use (0 = all cores)")(
      "verbose,v", po::bool_switch(&g.verbose), "log what the host and plugins do to stderr");
}

bool parse_verb_args(const std::vector<std::string>& args, po::options_description desc,
                     const std::vector<std::string>& positionals, const std::string& usage,
                     po::variables_map& vm) {
  desc.add_options()("help,h", "show this help");
  po::positional_options_description pos;
  for (const auto& name : positionals) pos.add(name.c_str(), 1);
  try {
    const auto style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(args).options(desc).positional(pos).style(style).run(), vm);
    if (vm.count("help")) {
      GlobalOptions shown;  // only printed: main() has already taken the global options out
      po::options_description global("Global options (before or after the command)");
      add_global_options(global, shown);
      std::cout << usage << "\n\n" << desc << "\n" << global << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::too_many_positional_options_error&) {
    throw UsageError("too many arguments");
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  for (const auto& name : positionals)
    if (!vm.count(name)) throw UsageError("missing argument " + name);
  return true;
}

std::vector<int32_t> parse_token_list(const std::string& text) {
  std::vector<int32_t> ids;
  size_t start = 0;
  for (size_t item = 1;; ++item) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string_view tok(text.data() + start, end - start);
    int32_t v = 0;
    auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    if (tok.empty()) throw UsageError("--tokens: item " + std::to_string(item) + " is empty");
    if (ec != std::errc() || ptr != tok.data() + tok.size() || v < 0)
      throw UsageError("--tokens: item " + std::to_string(item) + " '" + std::string(tok) +
                       "' is not a token id (a non-negative integer)");
    ids.push_back(v);
    if (end == text.size()) break;
    start = end + 1;
  }
  return ids;
}

std::unique_ptr<Model> load_model(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error("model file '" + path + "' does not exist");
  if (std::filesystem::is_directory(path, ec))
    throw Error("model path '" + path + "' is a directory, not a GGUF file");
  return Model::load(path);
}

}  // namespace apr::cli
