// SPDX-License-Identifier: MIT
// apr bench: the tests of llama.cpp's llama-bench, so that both tools' numbers compare one to one.
//   pp N  prefill: one batch of N prompt tokens, timed from an empty cache (or from depth D);
//   tg N  decode: N tokens fed one at a time, timed from an empty cache (or from depth D).
// Each test runs once as a warm-up, then R times; the table gives mean ± sample standard deviation
// of the per-run tokens per second, as llama-bench does.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>
#include <sstream>

#include "cli.hpp"
#include "common/error.hpp"
#include "runtime/session.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr [--backend=B] [-t THREADS] bench MODEL [-p N[,N...]] [-n N[,N...]]
                 [-d D[,D...]] [-r R] [-ub N] [-o md|csv|json] [--json] [--csv]
                 [--trace-overhead]

Runs llama-bench's tests on MODEL: for each depth D, "pp N" prefills N tokens in batches of at
most -ub tokens (default 512, as llama-bench) and
"tg N" decodes N tokens one at a time, both after D tokens already fill the cache (D = 0: an
empty cache; the fill is not timed). A list runs every value; 0 skips that kind of test.
Each test runs once as a warm-up, then R times; reported: mean ± standard deviation of the runs'
tokens per second, the model's size (bytes of all tensors) and parameter count. Tokens are fixed
pseudo-random ids and nothing is sampled, as in llama-bench.
--trace-overhead also runs every test, interleaved in the same repetitions, with a trace sink
installed that wants no stage: the price of tracing support when nothing is traced.)";

// A sink that declines every stage: the session still asks it at every stage boundary.
int32_t wants_nothing(void*, apr_stage, uint32_t) {
  return 0;
}
apr_status emit_nothing(void*, const apr_trace_tensor*) {
  return APR_OK;
}

std::vector<uint32_t> parse_counts(const std::string& text, const char* option) {
  std::vector<uint32_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > (1 << 20))
      throw UsageError(std::string(option) + " expects whole numbers 0.." +
                       std::to_string(1 << 20) + " separated by commas, got '" + text + "'");
    out.push_back(static_cast<uint32_t>(v));
  }
  if (out.empty()) throw UsageError(std::string(option) + " is empty");
  return out;
}

// llama.cpp's names for general.file_type (llama_ftype), which says how a file was quantized.
const char* file_type_name(uint64_t ftype) {
  switch (ftype) {
    case 0:
      return "F32";
    case 1:
      return "F16";
    case 2:
      return "Q4_0";
    case 3:
      return "Q4_1";
    case 7:
      return "Q8_0";
    case 8:
      return "Q5_0";
    case 9:
      return "Q5_1";
    case 10:
      return "Q2_K";
    case 11:
      return "Q3_K_S";
    case 12:
      return "Q3_K_M";
    case 13:
      return "Q3_K_L";
    case 14:
      return "Q4_K_S";
    case 15:
      return "Q4_K_M";
    case 16:
      return "Q5_K_S";
    case 17:
      return "Q5_K_M";
    case 18:
      return "Q6_K";
    case 32:
      return "BF16";
    default:
      return "?";
  }
}

std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2f B", n / 1e9);
  else
    std::snprintf(buf, sizeof buf, "%.2f M", n / 1e6);
  return buf;
}

std::string human_bytes(double b) {
  char buf[32];
  if (b >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024));
  return buf;
}

struct Test {
  uint32_t n_prompt = 0, n_gen = 0, depth = 0;
  bool idle_sink = false;
  std::vector<double> ns;  // wall time of each measured run

  std::string name() const {
    std::string s = n_prompt ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen);
    if (depth) s += " @ d" + std::to_string(depth);
    return s;
  }
  uint32_t tokens() const { return n_prompt ? n_prompt : n_gen; }
  std::vector<double> tok_s() const {
    std::vector<double> v;
    for (double t : ns) v.push_back(1e9 * tokens() / t);
    return v;
  }
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

// Sample standard deviation (n - 1), as llama-bench reports it; 0 for a single run.
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::string csv_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

int cmd_bench(Context& ctx, const std::vector<std::string>& args) {
  std::string path, prompt_arg = "512", gen_arg = "128", depth_arg = "0", output = "md";
  int64_t reps_arg = 5, ubatch = 512;
  bool json = false, csv = false, trace_overhead = false;
  po::options_description desc("Options");
  desc.add_options()("model", po::value(&path), "GGUF model file")(
      "prompt-tokens,p", po::value(&prompt_arg)->default_value("512"),
      "pp tests: prompt lengths, comma-separated (0: none)")(
      "gen-tokens,n", po::value(&gen_arg)->default_value("128"),
      "tg tests: tokens decoded, comma-separated (0: none)")(
      "depth,d", po::value(&depth_arg)->default_value("0"),
      "tokens already in the cache before each test, comma-separated")(
      "repetitions,r", po::value(&reps_arg)->default_value(5), "measured runs per test")(
      "ubatch", po::value(&ubatch)->default_value(512),
      "micro-batch size: a pp test's prompt runs in batches of at most N tokens (-ub)")(
      "output,o", po::value(&output)->default_value("md"), "md, csv or json")(
      "json", po::bool_switch(&json), "same as -o json")("csv", po::bool_switch(&csv),
                                                         "same as -o csv")(
      "trace-overhead", po::bool_switch(&trace_overhead),
      "also run each test with a trace sink that wants nothing (interleaved runs)");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm)) return kExitOk;
  const auto prompts = parse_counts(prompt_arg, "--prompt-tokens/-p");
  const auto gens = parse_counts(gen_arg, "--gen-tokens/-n");
  const auto depths = parse_counts(depth_arg, "--depth/-d");
  const uint32_t reps = static_cast<uint32_t>(in_range(reps_arg, "--repetitions", 1, 1000));
  in_range(ubatch, "--ubatch", 1, std::numeric_limits<uint32_t>::max());
  if (json) output = "json";
  if (csv) output = "csv";
  if (output != "md" && output != "csv" && output != "json")
    throw UsageError("--output must be md, csv or json, got '" + output + "'");

  std::vector<Test> tests;
  for (uint32_t d : depths) {
    for (uint32_t p : prompts)
      if (p) tests.push_back(Test{p, 0, d, false, {}});
    for (uint32_t n : gens)
      if (n) tests.push_back(Test{0, n, d, false, {}});
  }
  if (tests.empty()) throw UsageError("no test to run: every -p and -n value is 0");

  auto model = load_model(path);
  const ModelConfig& cfg = model->config();
  uint32_t n_ctx = 0, n_batch = 1;
  for (const Test& t : tests) {
    n_ctx = std::max(n_ctx, t.depth + t.tokens());
    n_batch = std::max({n_batch, t.n_prompt, t.depth});
  }
  if (n_ctx > cfg.n_ctx_train)
    throw UsageError("depth + test tokens (" + std::to_string(n_ctx) +
                     ") exceed the model's context of " + std::to_string(cfg.n_ctx_train));

  host::Plugin& plugin =
      select_backend(ctx.plugins(), ctx.global.backend, ctx.global.device, backend_needs(*model));
  SessionOptions so;
  so.n_ctx = n_ctx;
  so.n_batch = std::min<uint32_t>(n_batch, static_cast<uint32_t>(ubatch));
  so.n_threads = ctx.global.threads;
  so.device_index = ctx.global.device;
  Session session(*model, plugin, so);

  uint64_t size_bytes = 0, n_params = 0;
  for (const auto& t : model->file().tensors()) {
    size_bytes += t.nbytes;
    n_params += t.n_elements;
  }
  const auto ftype = model->file().get_uint("general.file_type");
  const std::string model_type = cfg.arch_name + " " + human_count(double(n_params)) + " " +
                                 (ftype ? file_type_name(*ftype) : "?");

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, int32_t(cfg.n_vocab) - 1);
  auto random_tokens = [&](uint32_t n) {
    std::vector<int32_t> v(n);
    for (auto& t : v) t = pick(rng);
    return v;
  };
  auto idle_sink = abi_struct<apr_trace_sink>();
  idle_sink.wants = wants_nothing;
  idle_sink.emit = emit_nothing;

  // One run of a test: fill to the depth (untimed), then time the prefill or the decode loop.
  auto run_once = [&](const Test& t) {
    session.reset();
    session.set_trace_sink(t.idle_sink ? &idle_sink : nullptr);
    if (t.depth) {
      const auto fill = random_tokens(t.depth);
      session.forward(fill);
    }
    const auto tokens = random_tokens(t.tokens());
    const auto t0 = std::chrono::steady_clock::now();
    if (t.n_prompt) {
      session.forward(tokens);
    } else {
      for (uint32_t i = 0; i < t.n_gen; ++i)
        session.forward(std::span<const int32_t>(&tokens[i], 1));
    }
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    session.set_trace_sink(nullptr);
    return ns;
  };

  if (trace_overhead) {
    const size_t n = tests.size();
    for (size_t i = 0; i < n; ++i) {
      Test t = tests[i];
      t.idle_sink = true;
      tests.push_back(t);
    }
  }
  // Tests run one after another like llama-bench's; a test and its idle-sink twin alternate run
  // by run, so drifting machine load hits both alike.
  const size_t n_plain = trace_overhead ? tests.size() / 2 : tests.size();
  for (size_t i = 0; i < n_plain; ++i) {
    Test* pair[2] = {&tests[i], trace_overhead ? &tests[i + n_plain] : nullptr};
    for (Test* t : pair)
      if (t) run_once(*t);  // warm-up, discarded
    for (uint32_t r = 0; r < reps; ++r)
      for (Test* t : pair)
        if (t) t->ns.push_back(run_once(*t));
  }

  const std::string backend(plugin.name());
  const std::string device = plugin.devices().at(ctx.global.device).name;
  const uint32_t threads = ctx.global.threads;
  if (output == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const Test& t : tests) {
      const auto ts = t.tok_s();
      out.push_back({{"model_filename", path},
                     {"model_type", model_type},
                     {"model_size", size_bytes},
                     {"model_n_params", n_params},
                     {"backends", backend},
                     {"device", device},
                     {"n_threads", threads},
                     {"n_ubatch", so.n_batch},
                     {"n_prompt", t.n_prompt},
                     {"n_gen", t.n_gen},
                     {"n_depth", t.depth},
                     {"test", t.name()},
                     {"trace_sink", t.idle_sink ? "idle" : "none"},
                     {"avg_ns", mean(t.ns)},
                     {"stddev_ns", stddev(t.ns)},
                     {"avg_ts", mean(ts)},
                     {"stddev_ts", stddev(ts)},
                     {"samples_ns", t.ns},
                     {"samples_ts", ts}});
    }
    std::cout << out.dump(2) << "\n";
  } else if (output == "csv") {
    std::cout << "model_filename,model_type,model_size,model_n_params,backends,n_threads,"
                 "n_prompt,n_gen,n_depth,trace_sink,avg_ns,stddev_ns,avg_ts,stddev_ts\n";
    for (const Test& t : tests) {
      const auto ts = t.tok_s();
      std::cout << csv_quote(path) << "," << csv_quote(model_type) << "," << size_bytes << ","
                << n_params << "," << csv_quote(backend) << "," << threads << "," << t.n_prompt
                << "," << t.n_gen << "," << t.depth << "," << (t.idle_sink ? "idle" : "none") << ","
                << uint64_t(mean(t.ns)) << "," << uint64_t(stddev(t.ns)) << "," << mean(ts) << ","
                << stddev(ts) << "\n";
    }
  } else {
    std::cout << "| model | size | params | backend | threads | test |"
              << (trace_overhead ? " trace sink |" : "") << " t/s |\n"
              << "| --- | ---: | ---: | --- | ---: | ---: |" << (trace_overhead ? " --- |" : "")
              << " ---: |\n";
    for (const Test& t : tests) {
      const auto ts = t.tok_s();
      char tps[64];
      std::snprintf(tps, sizeof tps, "%.2f ± %.2f", mean(ts), stddev(ts));
      std::cout << "| " << model_type << " | " << human_bytes(double(size_bytes)) << " | "
                << human_count(double(n_params)) << " | " << backend << " | "
                << (threads ? std::to_string(threads) : std::string("all")) << " | " << t.name()
                << " | " << (trace_overhead ? (t.idle_sink ? "idle | " : "none | ") : "") << tps
                << " |\n";
    }
  }
  return kExitOk;
}

}  // namespace apr::cli
