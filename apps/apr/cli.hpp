// What every verb of the `apr` command line shares: the global options, the plugin host, and
// the conventions for errors and exit codes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/plugin_host.hpp"
#include "model/model.hpp"

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
};

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
bool parse_verb_args(const std::vector<std::string>& args, po::options_description desc,
                     const std::vector<std::string>& positionals, const std::string& usage,
                     po::variables_map& vm);

// "1,2,3" -> {1, 2, 3}; throws UsageError naming the bad item.
std::vector<int32_t> parse_token_list(const std::string& text);

// Loads and validates a model, with a clear message when the path is not a readable file.
std::unique_ptr<Model> load_model(const std::string& path);

int cmd_run(Context& ctx, const std::vector<std::string>& args);
int cmd_info(Context& ctx, const std::vector<std::string>& args);
int cmd_plugins(Context& ctx, const std::vector<std::string>& args);
int cmd_bench(Context& ctx, const std::vector<std::string>& args);
int cmd_trace(Context& ctx, const std::vector<std::string>& args);
int cmd_diff(Context& ctx, const std::vector<std::string>& args);
int cmd_bisect(Context& ctx, const std::vector<std::string>& args);

}  // namespace apr::cli
