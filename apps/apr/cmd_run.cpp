// apr run: prompt in, generated text out (streamed), or one JSON object with --json.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <iostream>
#include <random>

#include "cli.hpp"
#include "common/error.hpp"
#include "npy.hpp"
#include "runtime/generate.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr [--backend=B] run MODEL (--prompt TEXT | --tokens IDS) [options]

Generates text with MODEL (a GGUF file) on the selected backend, streaming it to stdout.
With --temperature 0 decoding is greedy and fully deterministic.)";

struct RunOptions {
  std::string model, prompt, tokens, dump_logits;
  uint32_t max_tokens = 128, top_k = 40, ctx_size = 0;
  float temperature = 0.8f, top_p = 0.95f;
  uint64_t seed = 0;
  bool json = false;
};

double per_second(double count, double seconds) {
  return seconds > 0 ? count / seconds : 0.0;
}

}  // namespace

int cmd_run(Context& ctx, const std::vector<std::string>& args) {
  RunOptions o;
  po::options_description desc("Options");
  desc.add_options()("model", po::value(&o.model), "GGUF model file")(
      "prompt,p", po::value(&o.prompt),
      "prompt text (special tokens like <|im_start|> are "
      "recognised)")("tokens", po::value(&o.tokens),
                     "prompt as comma-separated token ids instead of text")(
      "max-tokens,n", po::value(&o.max_tokens)->default_value(128), "most tokens to generate")(
      "temperature", po::value(&o.temperature)->default_value(0.8f, "0.8"),
      "sampling temperature; 0 = greedy")("top-k", po::value(&o.top_k)->default_value(40),
                                          "sample among the k likeliest (0 = all)")(
      "top-p", po::value(&o.top_p)->default_value(0.95f, "0.95"),
      "sample within cumulative probability p (1 = off)")(
      "seed", po::value(&o.seed), "random seed (default: random, reported with --json)")(
      "ctx-size", po::value(&o.ctx_size)->default_value(0),
      "KV cache size in tokens (0 = prompt + max-tokens, at most the model's context)")(
      "json", po::bool_switch(&o.json), "print one JSON object instead of streaming text")(
      "dump-logits", po::value(&o.dump_logits),
      "write the logits behind each generated token to FILE.npy (float32, tokens x vocab)");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm)) return kExitOk;

  if (vm.count("prompt") == vm.count("tokens"))
    throw UsageError("give exactly one of --prompt and --tokens");
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    throw UsageError("--temperature must be a finite number >= 0");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw UsageError("--top-p must be in (0, 1]");
  if (!vm.count("seed")) o.seed = std::random_device{}();

  const auto t0 = std::chrono::steady_clock::now();
  auto model = load_model(o.model);
  const ModelConfig& cfg = model->config();
  std::vector<int32_t> prompt =
      vm.count("tokens") ? parse_token_list(o.tokens) : model->tokenizer().encode(o.prompt);
  if (prompt.empty()) throw UsageError("the prompt encodes to no tokens");

  const uint64_t needed = prompt.size() + o.max_tokens;
  uint32_t n_ctx = o.ctx_size;
  if (n_ctx == 0) n_ctx = static_cast<uint32_t>(std::min<uint64_t>(needed, cfg.n_ctx_train));
  if (prompt.size() > n_ctx)
    throw Error("the prompt has " + std::to_string(prompt.size()) +
                " tokens but the context holds " + std::to_string(n_ctx));

  // auto passes over a backend whose device cannot take this model's weight types.
  host::Plugin& plugin =
      select_backend(ctx.plugins(), ctx.global.backend, ctx.global.device, weight_needs(*model));
  SessionOptions so;
  so.n_ctx = n_ctx;
  so.n_threads = ctx.global.threads;
  so.device_index = ctx.global.device;
  Session session(*model, plugin, so);
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  GenerationParams gp;
  gp.max_tokens = o.max_tokens;
  gp.sampling = {o.temperature, o.top_k, o.top_p, o.seed};
  gp.keep_logits = !o.dump_logits.empty();

  const Tokenizer& tok = model->tokenizer();
  auto stream = [&](int32_t id) { std::cout << tok.token_to_piece(id) << std::flush; };
  GenerationResult r =
      generate(session, prompt, gp,
               o.json ? std::function<void(int32_t)>{} : std::function<void(int32_t)>(stream));
  if (!o.dump_logits.empty()) write_npy_f32(o.dump_logits, r.logits);

  const double prefill_tps = per_second(double(prompt.size()), r.prefill_seconds);
  const double decode_tps = per_second(double(r.decode_steps), r.decode_seconds);
  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["architecture"] = cfg.arch_name;
    j["backend"] = std::string(plugin.name());
    j["plugin_version"] = std::string(plugin.version());
    j["device"] = plugin.devices().at(ctx.global.device).name;
    if (vm.count("prompt")) j["prompt"] = o.prompt;
    j["prompt_token_ids"] = prompt;
    j["generated_token_ids"] = r.generated;
    j["text"] = tok.decode(r.generated);
    j["stop_reason"] = r.stop_reason;
    j["sampling"] = {
        {"temperature", o.temperature}, {"top_k", o.top_k}, {"top_p", o.top_p}, {"seed", o.seed}};
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
