// SPDX-License-Identifier: MIT
// What every verb of the `apr` command line shares: the global options, the plugin host, and
// the conventions for errors and exit codes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "host/plugin_host.hpp"
#include "model/model.hpp"
#include "runtime/sampler.hpp"

#include <boost/program_options.hpp>
#include <stdexcept>

namespace apr::cli {

namespace po = boost::program_options;

// Exit codes: 0 success; 1 a comparison found a divergence (diff, bisect); 2 any error.
constexpr int kExitOk = 0;
constexpr int kExitDiverged = 1;
constexpr int kExitError = 2;

// Thrown for a bad command line; printed as one line with a hint to --help, exit 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct GlobalOptions {
  std::string backend = "auto";
  std::vector<std::string> plugin_dirs;
  uint32_t device = 0;
  uint32_t threads = 0;
  bool verbose = false;
  bool force = false;  // --force: load a model whose values look broken, with warnings
  // Whole numbers as typed: read signed so that "-3" is refused rather than wrapped around, and
  // turned into the fields above by finish_global_options().
  int64_t device_arg = 0, threads_arg = 0, gpu_layers_arg = -1;
};

// Range-checks the numbers of `g` and fills device/threads; -ngl 0 with --backend auto selects
// cpu. Throws UsageError.
void finish_global_options(GlobalOptions& g);

// The command line split into what main() acts on. Pure (no output, no plugins), so it can be
// tested and fuzzed on its own. Throws UsageError.
struct CommandLine {
  GlobalOptions global;
  std::string verb;               // empty when none was given
  std::vector<std::string> args;  // the verb's arguments, global options taken out
  bool help = false, version = false;
};
CommandLine parse_command_line(std::vector<std::string> argv);

// llama.cpp habits rewritten into apr's spelling before parsing: -ngl N, --gpu-layers N and
// --n-gpu-layers N become --n-gpu-layers=N, -cnv becomes --chat, -ub becomes --ubatch (the
// micro-batch size), and an option followed by a
// negative number ("-n -5") gets it as its value rather than as an unknown option "-5".
std::vector<std::string> normalize_args(std::vector<std::string> args);

// Most decode steps `trace` and `bisect` take: every step of every layer is a set of files.
constexpr int64_t kMaxDecodeSteps = 4096;

// `value` when min <= value <= max; else UsageError "OPTION must be ...".
int64_t in_range(int64_t value, std::string_view option, int64_t min, int64_t max);

// The sampling options of run and chat, spelled and defaulted as llama.cpp's (the seed is each
// verb's own). Read signed/float as typed and checked by sampling_params().
struct SamplingOptions {
  float temperature = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat_penalty = 1.0f,
        frequency_penalty = 0.0f, presence_penalty = 0.0f;
  int64_t top_k = 40, repeat_last_n = 64;
};
// An options group whose caption states the order the samplers apply in.
po::options_description sampling_options(SamplingOptions& s);
// Range-checks `s` (UsageError naming the option) and returns the sampler's parameters.
SamplingParams sampling_params(const SamplingOptions& s, uint64_t seed);

// Fails before any work when FILE cannot be created: its directory is missing or not writable,
// or FILE is a directory. Throws UsageError naming `option`.
void check_output_path(const std::string& file, std::string_view option);

// The whole of FILE ("-": standard input); `what` names it in the one-line errors ("prompt file
// 'F' does not exist", "cannot read the text from standard input").
std::string read_text_file(const std::string& file, std::string_view what);

// The text of --prompt/-p (where "-" reads standard input) or of -f FILE; throws apr::Error
// when the file cannot be read.
std::string read_prompt_source(const std::string& prompt, const std::string& file);

class Context {
 public:
  explicit Context(GlobalOptions g) : global(std::move(g)) {}
  GlobalOptions global;
  // Loaded on first use, so verbs that need no backend (diff, info) never touch plugins.
  host::PluginHost& plugins();

 private:
  std::unique_ptr<host::PluginHost> host_;
};

// The options every verb also accepts (they may stand before or after the verb).
void add_global_options(po::options_description& desc, GlobalOptions& g);

// A verb receives the arguments after the global options were taken out, verb name excluded.
using VerbFn = int (*)(Context& ctx, const std::vector<std::string>& args);

// Parses a verb's arguments: `desc` gains --help; `positionals` name the positional arguments
// in order. Throws UsageError on anything unknown or missing. Returns false when --help was
// given, after printing `usage` and the options.
// Only the first `required` positionals must be present (default: all).
bool parse_verb_args(const std::vector<std::string>& args, po::options_description desc,
                     const std::vector<std::string>& positionals, const std::string& usage,
                     po::variables_map& vm, size_t required = SIZE_MAX);

// "1,2,3" -> {1, 2, 3}; throws UsageError naming the bad item.
std::vector<int32_t> parse_token_list(const std::string& text);

// Loads and validates a model, with a clear message when the path is not a readable file.
// Global --force turns refusals of suspicious values (core/model/model_checks.hpp) into warnings.
std::unique_ptr<Model> load_model(const std::string& path);

// The model a verb was given, or the default model (see default_model.hpp) when none was.
std::string model_or_default(const po::variables_map& vm, const std::string& given);

int cmd_run(Context& ctx, const std::vector<std::string>& args);
int cmd_chat(Context& ctx, const std::vector<std::string>& args);
int cmd_info(Context& ctx, const std::vector<std::string>& args);
int cmd_plugins(Context& ctx, const std::vector<std::string>& args);
int cmd_bench(Context& ctx, const std::vector<std::string>& args);
int cmd_trace(Context& ctx, const std::vector<std::string>& args);
int cmd_diff(Context& ctx, const std::vector<std::string>& args);
int cmd_bisect(Context& ctx, const std::vector<std::string>& args);
int cmd_perplexity(Context& ctx, const std::vector<std::string>& args);

}  // namespace apr::cli
