// SPDX-License-Identifier: MIT
// apr chat: an interactive conversation on the terminal. The history stays in the KV cache: each
// turn prefills only the tokens that follow what is cached. Ctrl-C ends the answer being written
// (not the program); Ctrl-D (end of input) quits.
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <limits>
#include <random>

#include "chat_prompt.hpp"
#include "cli.hpp"
#include "common/error.hpp"
#include "runtime/generate.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr [--backend=B] chat [MODEL] [--system TEXT] [options]

Talks with MODEL (default: SmolLM2-135M-Instruct installed by tools/install-deps.sh) through its
chat template. Type a message and Enter; Ctrl-C stops the answer being written, Ctrl-D quits.
The conversation is kept in the KV cache, so a turn costs only its own tokens.)";

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

extern "C" void on_sigint(int) {
  g_interrupted.store(true);
}

// SIGINT sets the flag and interrupts a blocking read (no SA_RESTART); restored on the way out.
class SigintGuard {
 public:
  SigintGuard() {
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintGuard() { sigaction(SIGINT, &old_, nullptr); }
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;

 private:
  struct sigaction old_ {};
};

enum class Input { line, interrupted, end };

// One line from standard input, read with read(2) so that Ctrl-C at the prompt returns at once.
// A Ctrl-C that lands just before the read would not interrupt it (the handler only sets the
// flag), so the wait is a poll that wakes every 100 ms to look at the flag.
Input read_line(std::string& line) {
  line.clear();
  for (;;) {
    if (g_interrupted.exchange(false)) return Input::interrupted;
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, 100);
    if (ready < 0 && errno != EINTR) throw Error("cannot read standard input");
    if (ready <= 0) continue;
    char c = 0;
    const ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n == 1) {
      if (c == '\n') return Input::line;
      line += c;
      continue;
    }
    if (n == 0) return line.empty() ? Input::end : Input::line;
    if (errno == EINTR) {
      if (g_interrupted.exchange(false)) return Input::interrupted;
      continue;
    }
    throw Error("cannot read standard input");
  }
}

// Length of the common prefix of two token sequences.
size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

int cmd_chat(Context& ctx, const std::vector<std::string>& args) {
  std::string model_arg, system, template_name;
  int64_t max_tokens = -1, ctx_size = 4096, seed = -1;
  SamplingOptions sampling;
  po::options_description desc("Options");
  auto add = desc.add_options();
  add("model,m", po::value(&model_arg), "GGUF model file (default: the installed SmolLM2)");
  add("system", po::value(&system), "a system message that opens the conversation");
  add("chat-template", po::value(&template_name), chat_template_option_help().c_str());
  add("max-tokens,n", po::value(&max_tokens)->default_value(-1),
      "most tokens per answer; -1 = until end of turn or a full context");
  add("seed,s", po::value(&seed)->default_value(-1), "random seed; -1 = random");
  add("ctx-size,c", po::value(&ctx_size)->default_value(4096),
      "KV cache size in tokens: the whole conversation must fit (at most the model's context)");
  desc.add(sampling_options(sampling));
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm, 0)) return kExitOk;

  const auto forced_template = parse_chat_template_option(template_name);
  in_range(max_tokens, "--max-tokens", -1, std::numeric_limits<int32_t>::max());
  in_range(ctx_size, "--ctx-size", 1, std::numeric_limits<uint32_t>::max());
  in_range(seed, "--seed", -1, std::numeric_limits<int64_t>::max());
  GenerationParams gp;
  gp.sampling =
      sampling_params(sampling, seed >= 0 ? uint64_t(seed) : uint64_t(std::random_device{}()));
  gp.interrupt = &g_interrupted;
  const std::string model_path = model_or_default(vm, model_arg);

  auto model = load_model(model_path);
  const Tokenizer& tok = model->tokenizer();
  const chat::Template tmpl = model_chat_template(*model, forced_template);
  uint32_t n_ctx = uint32_t(ctx_size);
  if (n_ctx > model->config().n_ctx_train) {
    std::cerr << "apr: note: --ctx-size " << n_ctx << " is more than the model's context of "
              << model->config().n_ctx_train << " tokens; using that\n";
    n_ctx = model->config().n_ctx_train;
  }
  host::Plugin& plugin =
      select_backend(ctx.plugins(), ctx.global.backend, ctx.global.device, backend_needs(*model));
  SessionOptions so;
  so.n_ctx = n_ctx;
  so.n_threads = ctx.global.threads;
  so.device_index = ctx.global.device;
  Session session(*model, plugin, so);

  const bool tty = ::isatty(STDIN_FILENO) != 0;
  std::cerr << "apr: chatting with " << model_path << " on " << plugin.name() << " (template "
            << chat::family_name(tmpl.family) << ", " << n_ctx
            << " tokens of context); Ctrl-C stops an answer, Ctrl-D quits\n";

  SigintGuard guard;
  std::vector<chat::Message> messages;
  if (vm.count("system")) messages.push_back({"system", system});
  std::vector<int32_t> cached;  // the tokens whose keys and values are in the KV cache

  std::string line;
  for (;;) {
    if (tty) std::cout << "> " << std::flush;
    const Input in = read_line(line);
    if (in == Input::end) break;
    if (in == Input::interrupted) {
      std::cout << "\n(Ctrl-D quits)\n";
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    const std::vector<int32_t> all =
        tok.encode(chat::render(tmpl, messages, true), /*add_special=*/false, true);
    // Only what follows the cached history is prefilled. Where re-tokenizing the history gives
    // other ids than the ones generated, the cache is rewound to the first difference.
    const size_t keep = common_prefix(all, cached);
    if (all.size() - keep + 1 > n_ctx - std::min<size_t>(keep, n_ctx)) {
      std::cerr << "apr: the conversation no longer fits the context of " << n_ctx
                << " tokens; start a new chat (a larger --ctx-size holds more)\n";
      return kExitError;
    }
    session.rewind(uint32_t(keep));
    cached.resize(keep);
    const std::vector<int32_t> fresh(all.begin() + static_cast<std::ptrdiff_t>(keep), all.end());
    spdlog::debug("chat turn: prefilling {} new tokens after {} cached", fresh.size(), keep);

    g_interrupted.store(false);
    gp.max_tokens = max_tokens < 0 ? std::numeric_limits<uint32_t>::max() : uint32_t(max_tokens);
    auto stream = [&](int32_t id) { std::cout << tok.token_to_piece(id) << std::flush; };
    gp.history = cached;  // the penalties see the whole conversation, not only this turn
    GenerationResult r = generate(session, fresh, gp, stream);
    if (r.stop_reason == "interrupted") std::cout << " [stopped]";
    std::cout << "\n" << std::flush;
    g_interrupted.store(false);

    // The last sampled token was never run through the model; everything before it was.
    cached.insert(cached.end(), fresh.begin(), fresh.end());
    if (!r.generated.empty())
      cached.insert(cached.end(), r.generated.begin(), r.generated.end() - 1);
    std::vector<int32_t> answer = r.generated;
    if (!answer.empty() && tok.is_end_of_generation(answer.back())) answer.pop_back();
    messages.push_back({"assistant", tok.decode(answer)});
    if (r.stop_reason == "context") {
      std::cerr << "apr: the context of " << n_ctx << " tokens is full; start a new chat\n";
      return kExitError;
    }
  }
  if (tty) std::cout << "\n";
  return kExitOk;
}

}  // namespace apr::cli
