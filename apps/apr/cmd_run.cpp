// SPDX-License-Identifier: MIT
// apr run: prompt in, generated text out (streamed), or one JSON object with --json.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>
#include <random>

#include "chat_prompt.hpp"
#include "cli.hpp"
#include "common/error.hpp"
#include "npy.hpp"
#include "runtime/generate.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr [--backend=B] run [MODEL] (-p TEXT | -f FILE | --tokens IDS) [options]

Generates text with MODEL (a GGUF file; default: SmolLM2-135M-Instruct installed by
tools/install-deps.sh) on the selected backend, streaming it to stdout. With --chat the prompt
is one user message formatted by the model's chat template. With --temperature 0 decoding is
greedy and fully deterministic. Short options follow llama.cpp: -m -p -f -n -c -s -t -ngl.)";

struct RunOptions {
  std::string model, prompt, file, tokens, dump_logits, system, chat_template;
  int64_t max_tokens = 128, ctx_size = 0, seed = -1, ubatch = 512;
  SamplingOptions sampling;
  bool json = false, chat = false, ignore_eos = false;
};

double per_second(double count, double seconds) {
  return seconds > 0 ? count / seconds : 0.0;
}

}  // namespace

int cmd_run(Context& ctx, const std::vector<std::string>& args) {
  RunOptions o;
  po::options_description desc("Options");
  auto add = desc.add_options();
  add("model,m", po::value(&o.model), "GGUF model file (default: the installed SmolLM2)");
  add("prompt,p", po::value(&o.prompt),
      "prompt text, or - to read it from standard input (special tokens like <|im_start|> "
      "are recognised)");
  add("file,f", po::value(&o.file), "read the prompt from FILE");
  add("tokens", po::value(&o.tokens), "prompt as comma-separated token ids instead of text");
  add("chat", po::bool_switch(&o.chat),
      "format the prompt as one user message with the model's chat template (llama.cpp: -cnv)");
  add("system", po::value(&o.system), "with --chat: a system message before the prompt");
  add("chat-template", po::value(&o.chat_template), chat_template_option_help().c_str());
  add("max-tokens,n", po::value(&o.max_tokens)->default_value(128),
      "most tokens to generate; -1 = until end of generation or a full context");
  add("ignore-eos", po::bool_switch(&o.ignore_eos),
      "keep generating past end-of-generation tokens");
  add("seed,s", po::value(&o.seed)->default_value(-1),
      "random seed; -1 = random (reported with --json)");
  add("ctx-size,c", po::value(&o.ctx_size)->default_value(0),
      "KV cache size in tokens (0 = prompt + max-tokens); at most the model's context");
  add("ubatch", po::value(&o.ubatch)->default_value(512),
      "evaluate the prompt in micro-batches of at most N tokens (llama.cpp's -ub)");
  add("json", po::bool_switch(&o.json), "print one JSON object instead of streaming text");
  add("dump-logits", po::value(&o.dump_logits),
      "write the logits behind each generated token to FILE.npy (float32, tokens x vocab)");
  desc.add(sampling_options(o.sampling));
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm, 0)) return kExitOk;

  // Everything the command line alone can refuse is refused before the model is loaded.
  const int sources = int(vm.count("prompt")) + int(vm.count("file")) + int(vm.count("tokens"));
  if (sources != 1) throw UsageError("give exactly one of --prompt (-p), --file (-f) and --tokens");
  if (o.chat && vm.count("tokens"))
    throw UsageError("--chat formats text; it cannot take --tokens");
  if (!o.chat && (vm.count("system") || vm.count("chat-template")))
    throw UsageError("--system and --chat-template need --chat");
  const auto forced_template = parse_chat_template_option(o.chat_template);
  in_range(o.max_tokens, "--max-tokens", -1, std::numeric_limits<int32_t>::max());
  in_range(o.ctx_size, "--ctx-size", 0, std::numeric_limits<uint32_t>::max());
  in_range(o.ubatch, "--ubatch", 1, std::numeric_limits<uint32_t>::max());
  in_range(o.seed, "--seed", -1, std::numeric_limits<int64_t>::max());
  if (!o.dump_logits.empty()) check_output_path(o.dump_logits, "--dump-logits");
  const uint64_t seed = o.seed >= 0 ? uint64_t(o.seed) : std::random_device{}();
  const SamplingParams sampling = sampling_params(o.sampling, seed);
  const uint32_t max_tokens =
      o.max_tokens < 0 ? std::numeric_limits<uint32_t>::max() : uint32_t(o.max_tokens);
  const std::string text = vm.count("tokens") ? "" : read_prompt_source(o.prompt, o.file);
  const std::string model_path = model_or_default(vm, o.model);

  const auto t0 = std::chrono::steady_clock::now();
  auto model = load_model(model_path);
  const ModelConfig& cfg = model->config();
  const Tokenizer& tok = model->tokenizer();
  std::vector<int32_t> prompt;
  std::string formatted;
  std::optional<chat::Template> tmpl;
  if (vm.count("tokens")) {
    prompt = parse_token_list(o.tokens);
  } else if (o.chat) {
    tmpl = model_chat_template(*model, forced_template);
    const auto system = vm.count("system") ? std::optional(o.system) : std::nullopt;
    prompt = chat_prompt_tokens(*model, *tmpl, text, system, &formatted);
  } else {
    prompt = tok.encode(text);
  }
  if (prompt.empty()) throw UsageError("the prompt encodes to no tokens");

  uint32_t n_ctx = uint32_t(o.ctx_size);
  if (n_ctx > cfg.n_ctx_train) {
    std::cerr << "apr: note: --ctx-size " << n_ctx << " is more than the model's context of "
              << cfg.n_ctx_train << " tokens; using " << cfg.n_ctx_train << "\n";
    n_ctx = cfg.n_ctx_train;
  }
  const uint64_t needed = prompt.size() + uint64_t(max_tokens);
  if (n_ctx == 0) n_ctx = static_cast<uint32_t>(std::min<uint64_t>(needed, cfg.n_ctx_train));
  if (prompt.size() > n_ctx)
    throw Error("the prompt has " + std::to_string(prompt.size()) +
                " tokens but the context holds " + std::to_string(n_ctx));

  // auto passes over a backend whose device cannot take this model's weight types.
  host::Plugin& plugin =
      select_backend(ctx.plugins(), ctx.global.backend, ctx.global.device, backend_needs(*model));
  SessionOptions so;
  so.n_ctx = n_ctx;
  so.n_batch = static_cast<uint32_t>(o.ubatch);
  so.n_threads = ctx.global.threads;
  so.device_index = ctx.global.device;
  Session session(*model, plugin, so);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  GenerationParams gp;
  gp.max_tokens = max_tokens;
  gp.sampling = sampling;
  gp.keep_logits = !o.dump_logits.empty();
  gp.ignore_eos = o.ignore_eos;

  // End-of-turn tokens are control tokens: not printed, as llama.cpp prints them.
  auto stream = [&](int32_t id) { std::cout << tok.token_to_piece(id) << std::flush; };
  GenerationResult r =
      generate(session, prompt, gp,
               o.json ? std::function<void(int32_t)>{} : std::function<void(int32_t)>(stream));
  if (!o.dump_logits.empty()) write_npy_f32(o.dump_logits, r.logits);

  const double prefill_tps = per_second(double(prompt.size()), r.prefill_seconds);
  const double decode_tps = per_second(double(r.decode_steps), r.decode_seconds);
  if (o.json) {
    nlohmann::json j;
    j["model"] = model_path;
    j["architecture"] = cfg.arch_name;
    j["backend"] = std::string(plugin.name());
    j["plugin_version"] = std::string(plugin.version());
    j["device"] = plugin.devices().at(ctx.global.device).name;
    if (!vm.count("tokens")) j["prompt"] = text;
    if (tmpl) {
      j["chat_template"] = std::string(chat::family_name(tmpl->family));
      j["formatted_prompt"] = formatted;
    }
    j["prompt_token_ids"] = prompt;
    j["generated_token_ids"] = r.generated;
    j["text"] = tok.decode(r.generated);
    j["stop_reason"] = r.stop_reason;
    j["sampling"] = {{"temperature", sampling.temperature},
                     {"top_k", sampling.top_k},
                     {"top_p", sampling.top_p},
                     {"min_p", sampling.min_p},
                     {"repeat_penalty", sampling.repeat_penalty},
                     {"repeat_last_n", sampling.repeat_last_n},
                     {"frequency_penalty", sampling.frequency_penalty},
                     {"presence_penalty", sampling.presence_penalty},
                     {"seed", seed}};
    j["timings"] = {{"load_s", load_s},
                    {"prefill_s", r.prefill_seconds},
                    {"decode_s", r.decode_seconds},
                    {"prefill_tok_s", prefill_tps},
                    {"decode_tok_s", decode_tps}};
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "\n";
    std::cerr << "apr: " << prompt.size() << " prompt tokens, " << r.generated.size()
              << " generated (" << r.stop_reason << ") on " << plugin.name() << "; prefill "
              << prefill_tps << " tok/s, decode " << decode_tps << " tok/s\n";
  }
  return kExitOk;
}

}  // namespace apr::cli
