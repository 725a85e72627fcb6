// apr bench: prefill and decode throughput, as medians over repetitions after a warm-up run.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>

#include "cli.hpp"
#include "common/error.hpp"
#include "runtime/sampler.hpp"
#include "runtime/session.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr [--backend=B] bench MODEL [--prompt-tokens N] [--gen-tokens N]
                 [--repetitions R] [--json]

Measures prefill (one batch of N prompt tokens) and decode (one token at a time, greedy, never
stopping early) throughput. One warm-up run is discarded; the median of R runs is reported with
the minimum and maximum. Prompt tokens are fixed pseudo-random ids, so runs are comparable.
--trace-overhead also measures, interleaved in the same runs, the forward pass with a trace sink
installed that wants no stage: the price of tracing support when nothing is traced.)";

struct Throughput {
  std::vector<double> prefill, decode;
};

// A sink that declines every stage: the session still asks it at every stage boundary.
int32_t wants_nothing(void*, apr_stage, uint32_t) {
  return 0;
}
apr_status emit_nothing(void*, const apr_trace_tensor*) {
  return APR_OK;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int cmd_bench(Context& ctx, const std::vector<std::string>& args) {
  std::string path;
  uint32_t prompt_tokens = 128, gen_tokens = 64, reps = 5;
  bool json = false, trace_overhead = false;
  po::options_description desc("Options");
  desc.add_options()("model", po::value(&path), "GGUF model file")(
      "prompt-tokens", po::value(&prompt_tokens)->default_value(128), "prefill batch size")(
      "gen-tokens", po::value(&gen_tokens)->default_value(64), "tokens decoded per run")(
      "repetitions,r", po::value(&reps)->default_value(5), "measured runs")(
      "json", po::bool_switch(&json), "print JSON")(
      "trace-overhead", po::bool_switch(&trace_overhead),
      "also measure with a trace sink that wants nothing (interleaved runs)");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm)) return kExitOk;
  if (prompt_tokens == 0 || reps == 0)
    throw UsageError("--prompt-tokens and --repetitions must be > 0");

  auto model = load_model(path);
  const ModelConfig& cfg = model->config();
  host::Plugin& plugin = ctx.plugins().select(ctx.global.backend);
  SessionOptions so;
  so.n_ctx = prompt_tokens + gen_tokens;
  if (so.n_ctx > cfg.n_ctx_train)
    throw UsageError("prompt + gen tokens exceed the model's context of " +
                     std::to_string(cfg.n_ctx_train));
  so.n_batch = prompt_tokens;
  so.n_threads = ctx.global.threads;
  so.device_index = ctx.global.device;
  Session session(*model, plugin, so);

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(cfg.n_vocab) - 1);
  std::vector<int32_t> prompt(prompt_tokens);
  for (auto& t : prompt) t = pick(rng);

  auto run_once = [&](Throughput& into, bool record) {
    session.reset();
    auto t0 = std::chrono::steady_clock::now();
    const std::vector<float>* logits = &session.forward(prompt);
    const double prefill_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    for (uint32_t i = 0; i < gen_tokens; ++i) {
      const int32_t next = argmax(*logits);
      logits = &session.forward(std::span<const int32_t>(&next, 1));
    }
    const double decode_s = seconds_since(t0);
    if (!record) return;
    into.prefill.push_back(prompt_tokens / prefill_s);
    if (gen_tokens) into.decode.push_back(gen_tokens / decode_s);
  };
  auto idle_sink = abi_struct<apr_trace_sink>();
  idle_sink.wants = wants_nothing;
  idle_sink.emit = emit_nothing;

  Throughput plain, with_sink;
  run_once(plain, false);  // warms caches and is discarded
  for (uint32_t rep = 0; rep < reps; ++rep) {
    run_once(plain, true);
    if (trace_overhead) {
      session.set_trace_sink(&idle_sink);
      run_once(with_sink, true);
      session.set_trace_sink(nullptr);
    }
  }
  const std::vector<double>& prefill_tps = plain.prefill;
  const std::vector<double>& decode_tps = plain.decode;

  auto summary = [](const std::vector<double>& v) {
    if (v.empty()) return nlohmann::json();
    return nlohmann::json{{"median", median(v)},
                          {"min", *std::min_element(v.begin(), v.end())},
                          {"max", *std::max_element(v.begin(), v.end())},
                          {"runs", v}};
  };
  nlohmann::json j = {{"model", path},
                      {"backend", std::string(plugin.name())},
                      {"device", plugin.devices().at(ctx.global.device).name},
                      {"threads", ctx.global.threads},
                      {"prompt_tokens", prompt_tokens},
                      {"gen_tokens", gen_tokens},
                      {"repetitions", reps},
                      {"prefill_tok_s", summary(prefill_tps)},
                      {"decode_tok_s", summary(decode_tps)}};
  if (trace_overhead) {
    j["idle_trace_sink"] = {{"prefill_tok_s", summary(with_sink.prefill)},
                            {"decode_tok_s", summary(with_sink.decode)}};
  }
  if (json) {
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "model " << path << " on " << plugin.name() << " ("
            << plugin.devices().at(ctx.global.device).name << ")\n";
  std::cout << "prefill " << prompt_tokens << " tokens: median " << median(prefill_tps)
            << " tok/s over " << reps << " runs\n";
  if (!decode_tps.empty())
    std::cout << "decode " << gen_tokens << " tokens: median " << median(decode_tps)
              << " tok/s over " << reps << " runs\n";
  if (trace_overhead) {
    std::cout << "with an idle trace sink: prefill median " << median(with_sink.prefill)
              << " tok/s (" << median(with_sink.prefill) / median(prefill_tps) << "x)";
    if (!decode_tps.empty())
      std::cout << ", decode median " << median(with_sink.decode) << " tok/s ("
                << median(with_sink.decode) / median(decode_tps) << "x)";
    std::cout << "\n";
  }
  return kExitOk;
}

}  // namespace apr::cli
