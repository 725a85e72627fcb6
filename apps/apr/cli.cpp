// SPDX-License-Identifier: MIT
#include "cli.hpp"

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <regex>
#include <sstream>

#include "common/error.hpp"
#include "default_model.hpp"

namespace apr::cli {

host::PluginHost& Context::plugins() {
  if (!host_) {
    host::SearchOptions options;
    for (const auto& d : global.plugin_dirs) options.plugin_dirs.emplace_back(d);
    host_ = std::make_unique<host::PluginHost>(std::move(options));
  }
  return *host_;
}

namespace {
// --force as parsed, so every verb's load_model() honours it without passing it along.
bool g_force_model_loads = false;

// Boost.Program_options fills its message template by replacing "%value%", "%option%" and the
// like until none is left, so a value that itself contains such a token ("--threads %value%")
// makes what() loop forever. The user's text is put in with its '%' signs changed to a look-alike
// (U+FF05) before the message is built.
struct SafeOptionError : po::error_with_option_name {
  static std::string message(const po::error& e) {
    if (auto* named = dynamic_cast<const po::error_with_option_name*>(&e)) {
      po::error_with_option_name copy = *named;
      for (auto& [token, value] : copy.*(&SafeOptionError::m_substitutions))
        for (size_t pos; (pos = value.find('%')) != std::string::npos;)
          value.replace(pos, 1, "\xef\xbc\x85");
      return copy.what();
    }
    return e.what();
  }
};
}  // namespace

void add_global_options(po::options_description& desc, GlobalOptions& g) {
  auto add = desc.add_options();
  add("backend", po::value(&g.backend)->default_value("auto"),
      "backend plugin to run on: cpu, vulkan (alias wgpu), cuda, or auto (the best usable: a "
      "CUDA or Vulkan GPU, else cpu; see 'apr plugins')");
  add("plugin-dir", po::value(&g.plugin_dirs)->composing(),
      "search this directory for plugins first (repeatable); then APR_PLUGIN_PATH "
      "(colon-separated), the installed plugin directory, and the directory beside apr");
  add("device", po::value(&g.device_arg)->default_value(0),
      "device index within the backend (see 'apr plugins')");
  add("threads,t", po::value(&g.threads_arg)->default_value(0),
      "CPU threads a backend may use (0 = all cores)");
  add("n-gpu-layers", po::value(&g.gpu_layers_arg)->default_value(-1),
      "-ngl N as in llama.cpp (meaningful for GPU backends only): apr runs every layer on one "
      "backend, so 0 selects cpu under --backend auto and any other value leaves the choice");
  add("verbose,v", po::bool_switch(&g.verbose), "log what the host and plugins do to stderr");
  add("force", po::bool_switch(&g.force)->notifier([](bool on) { g_force_model_loads = on; }),
      "load a model even when its values look broken (NaN/inf weights, special token ids beyond "
      "the vocabulary, NaN token scores), with a warning for each");
}

void finish_global_options(GlobalOptions& g) {
  g.device = static_cast<uint32_t>(in_range(g.device_arg, "--device", 0, 1023));
  g.threads = static_cast<uint32_t>(in_range(g.threads_arg, "--threads", 0, 1024));
  in_range(g.gpu_layers_arg, "--n-gpu-layers", -1, 1 << 20);
  if (g.gpu_layers_arg == 0) {
    if (g.backend == "auto") {
      g.backend = "cpu";
    } else if (g.backend != "cpu") {
      throw UsageError("-ngl 0 asks for no GPU layers but --backend is " + g.backend);
    }
  }
}

std::vector<std::string> normalize_args(std::vector<std::string> args) {
  static const std::regex negative_number("^-[0-9.].*");
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    if (a == "--") {  // everything after it is positional
      out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
      break;
    }
    if (a == "-ngl" || a == "--gpu-layers") a = "--n-gpu-layers";
    if (a.rfind("-ngl=", 0) == 0) a = "--n-gpu-layers=" + a.substr(5);
    if (a == "-cnv" || a == "--conversation") a = "--chat";
    if (a == "-ub") a = "--ubatch";
    if (a.rfind("-ub=", 0) == 0) a = "--ubatch=" + a.substr(4);
    const bool is_option = a.size() >= 2 && a[0] == '-' && a.find('=') == std::string::npos &&
                           !std::regex_match(a, negative_number);
    if (is_option && i + 1 < args.size() && std::regex_match(args[i + 1], negative_number)) {
      // "-n -5" -> "-n-5", "--max-tokens -5" -> "--max-tokens=-5": the number is the value.
      out.push_back(a.rfind("--", 0) == 0 ? a + "=" + args[i + 1] : a + args[i + 1]);
      ++i;
      continue;
    }
    out.push_back(a);
  }
  return out;
}

CommandLine parse_command_line(std::vector<std::string> argv) {
  CommandLine cl;
  po::options_description global;
  add_global_options(global, cl.global);
  global.add_options()("help,h", "show this help")("version", "print the version");
  po::variables_map vm;
  try {
    const auto style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    auto parsed = po::command_line_parser(normalize_args(std::move(argv)))
                      .options(global)
                      .style(style)
                      .allow_unregistered()
                      .run();
    po::store(parsed, vm);
    po::notify(vm);
    cl.args = po::collect_unrecognized(parsed.options, po::include_positional);
  } catch (const po::error& e) {
    throw UsageError(SafeOptionError::message(e));
  }
  finish_global_options(cl.global);
  cl.help = vm.count("help") != 0;
  cl.version = vm.count("version") != 0;
  if (!cl.args.empty()) {
    cl.verb = cl.args.front();
    cl.args.erase(cl.args.begin());
  }
  return cl;
}

int64_t in_range(int64_t value, std::string_view option, int64_t min, int64_t max) {
  if (value >= min && value <= max) return value;
  throw UsageError(std::string(option) + " must be an integer from " + std::to_string(min) +
                   " to " + std::to_string(max) + ", not " + std::to_string(value));
}

po::options_description sampling_options(SamplingOptions& s) {
  po::options_description group(
      "Sampling, applied in llama.cpp's order: penalties (over the last --repeat-last-n tokens,\n"
      "prompt included; also with --temperature 0), top-k, top-p, min-p, temperature");
  auto add = group.add_options();
  add("temperature", po::value(&s.temperature)->default_value(0.8f, "0.8"),
      "sampling temperature; 0 = greedy");
  add("top-k", po::value(&s.top_k)->default_value(40), "sample among the k likeliest (0 = all)");
  add("top-p", po::value(&s.top_p)->default_value(0.95f, "0.95"),
      "sample within cumulative probability p (1 = off)");
  add("min-p", po::value(&s.min_p)->default_value(0.05f, "0.05"),
      "drop tokens less likely than P times the likeliest, before temperature (0 = off)");
  add("repeat-penalty", po::value(&s.repeat_penalty)->default_value(1.0f, "1.0"),
      "divide positive (multiply negative) logits of recent tokens by F (1 = off)");
  add("repeat-last-n", po::value(&s.repeat_last_n)->default_value(64),
      "tokens the penalties look back over (-1 = the whole context, 0 = off)");
  add("frequency-penalty", po::value(&s.frequency_penalty)->default_value(0.0f, "0.0"),
      "subtract F times a recent token's count from its logit (0 = off)");
  add("presence-penalty", po::value(&s.presence_penalty)->default_value(0.0f, "0.0"),
      "subtract F from the logit of every recent token (0 = off)");
  return group;
}

SamplingParams sampling_params(const SamplingOptions& s, uint64_t seed) {
  in_range(s.top_k, "--top-k", 0, std::numeric_limits<int32_t>::max());
  in_range(s.repeat_last_n, "--repeat-last-n", -1, std::numeric_limits<int32_t>::max());
  // Written so that NaN fails each test too.
  if (!(s.temperature >= 0) || !std::isfinite(s.temperature))
    throw UsageError("--temperature must be a finite number >= 0");
  if (!(s.top_p > 0 && s.top_p <= 1)) throw UsageError("--top-p must be in (0, 1]");
  if (!(s.min_p >= 0 && s.min_p <= 1)) throw UsageError("--min-p must be in [0, 1]");
  // As llama.cpp: a repeat penalty of 0 or less would flip or erase logits.
  if (!(s.repeat_penalty > 0) || !std::isfinite(s.repeat_penalty))
    throw UsageError("--repeat-penalty must be a finite number > 0");
  // Negative frequency and presence penalties are meaningful (they favour repetition, as
  // OpenAI's API allows).
  if (!std::isfinite(s.frequency_penalty))
    throw UsageError("--frequency-penalty must be a finite number");
  if (!std::isfinite(s.presence_penalty))
    throw UsageError("--presence-penalty must be a finite number");
  SamplingParams p;
  p.temperature = s.temperature;
  p.top_k = uint32_t(s.top_k);
  p.top_p = s.top_p;
  p.seed = seed;
  p.min_p = s.min_p;
  p.repeat_penalty = s.repeat_penalty;
  p.repeat_last_n = int32_t(s.repeat_last_n);
  p.frequency_penalty = s.frequency_penalty;
  p.presence_penalty = s.presence_penalty;
  return p;
}

void check_output_path(const std::string& file, std::string_view option) {
  namespace fs = std::filesystem;
  const std::string opt(option);
  if (file.empty()) throw UsageError(opt + " needs a file name");
  std::error_code ec;
  const fs::path path(file);
  if (fs::is_directory(path, ec))
    throw UsageError(opt + ": '" + file + "' is a directory, not a file");
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec))
    throw UsageError(opt + ": directory '" + dir.string() + "' does not exist");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw UsageError(opt + ": directory '" + dir.string() + "' is not writable");
  if (fs::exists(path, ec) && ::access(path.c_str(), W_OK) != 0)
    throw UsageError(opt + ": '" + file + "' exists and is not writable");
}

std::string read_text_file(const std::string& file, std::string_view what) {
  const std::string name(what);
  std::ostringstream text;
  if (file == "-") {
    text << std::cin.rdbuf();
    if (std::cin.bad()) throw Error("cannot read the " + name + " from standard input");
    return text.str();
  }
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw Error(name + " file '" + file + "' is a directory");
  if (!std::filesystem::exists(file, ec)) throw Error(name + " file '" + file + "' does not exist");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("cannot open " + name + " file '" + file + "'");
  text << in.rdbuf();
  if (in.bad()) throw Error("cannot read " + name + " file '" + file + "'");
  return text.str();
}

std::string read_prompt_source(const std::string& prompt, const std::string& file) {
  if (file.empty() && prompt != "-") return prompt;
  return read_text_file(file.empty() ? "-" : file, "prompt");
}

bool parse_verb_args(const std::vector<std::string>& args, po::options_description desc,
                     const std::vector<std::string>& positionals, const std::string& usage,
                     po::variables_map& vm, size_t required) {
  desc.add_options()("help,h", "show this help");
  po::positional_options_description pos;
  for (const auto& name : positionals) pos.add(name.c_str(), 1);
  try {
    const auto style =
        po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    po::store(po::command_line_parser(normalize_args(args))
                  .options(desc)
                  .positional(pos)
                  .style(style)
                  .run(),
              vm);
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
    throw UsageError(SafeOptionError::message(e));
  }
  for (size_t i = 0; i < positionals.size() && i < required; ++i)
    if (!vm.count(positionals[i])) throw UsageError("missing argument " + positionals[i]);
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
  LoadOptions options;
  options.force = g_force_model_loads;
  return Model::load(path, options);
}

std::string model_or_default(const po::variables_map& vm, const std::string& given) {
  return vm.count("model") ? given : default_model_path();
}

}  // namespace apr::cli
