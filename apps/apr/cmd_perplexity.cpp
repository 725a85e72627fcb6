// SPDX-License-Identifier: MIT
// apr perplexity: the perplexity of a model over a text, chunk by chunk as llama.cpp's
// llama-perplexity computes it, and with --backend-b how far a second backend's next-token
// distributions lie from the first's (KL divergence, top-1 agreement). The arithmetic is
// core/eval's.
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <limits>
#include <optional>

#include "cli.hpp"
#include "common/error.hpp"
#include "eval/perplexity.hpp"
#include "eval/session_logits.hpp"
#include "runtime/session.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage =
    R"(Usage: apr [--backend=A] perplexity [MODEL] -f FILE [--ctx-size N] [--chunks N]
                      [--batch-size N] [--backend-b B] [--json]

Measures MODEL's perplexity over the text in FILE (MODEL defaults to the installed
SmolLM2-135M-Instruct) the way llama.cpp's llama-perplexity does, so the figures compare:
the whole text is tokenized (with BOS in front when the model's tokenizer adds one) and cut into
chunks of --ctx-size tokens (what is left at the end is not used); each chunk is evaluated from
an empty KV cache, its first token replaced by BOS when the model adds BOS, and only its second
half is scored: each of the last ctx/2 - 1 tokens is predicted from at least ctx/2 tokens
before it. Its negative log-likelihood comes from the log-softmax of the logits, in double;
perplexity = exp(mean NLL) over every scored token, printed after each chunk as [chunk]PPL and
at the end with llama-perplexity's uncertainty, PPL * sqrt(var(NLL) / (count - 1)).

With --backend-b B both backends evaluate the same chunks and, per scored position, apr reports
the KL divergence KL(P_A || P_B) of their next-token distributions (softmax in double): its mean
and maximum, the fraction of positions where both rank the same token first (top-1 agreement),
both perplexities and the five worst positions. A is the global --backend.

Examples:
  apr --backend cpu perplexity -f /usr/share/common-licenses/GPL-3 -c 256
  apr --backend cpu perplexity -f corpus.txt --chunks 20 --backend-b vulkan --json)";

struct Options {
  std::string model, file, backend_b;
  int64_t ctx_size = 512, chunks = -1, batch_size = 512;
  bool json = false;
};

// The text of FILE ("-": standard input) as llama.cpp's -f reads it: one trailing newline is
// dropped.
std::string read_text(const std::string& file) {
  std::string s = read_text_file(file, "text");
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (s.empty()) throw Error("the text in '" + file + "' is empty");
  return s;
}

// A token's text for the terminal: control characters escaped, in quotes.
std::string quoted_piece(const Tokenizer& tok, int32_t id) {
  std::string out = "\"";
  for (unsigned char ch : tok.token_to_piece(id, true)) {
    if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch == '"' || ch == '\\') {
      out += '\\';
      out += char(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += char(ch);
    }
  }
  return out + "\"";
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string sci(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// A session for one backend, with a clear message when the device cannot hold the context.
std::unique_ptr<Session> open_session(const Model& model, const host::Plugin& plugin,
                                      const GlobalOptions& g, uint32_t n_ctx, uint32_t n_batch) {
  SessionOptions so;
  so.n_ctx = n_ctx;
  so.n_batch = n_batch;
  so.n_threads = g.threads;
  so.device_index = g.device;
  so.logits_every_row = true;
  try {
    return std::make_unique<Session>(model, plugin, so);
  } catch (const std::bad_alloc&) {
    throw Error("not enough memory for a context of " + std::to_string(n_ctx) +
                " tokens on backend '" + plugin.name() + "' (try a smaller --ctx-size)");
  } catch (const BackendError& e) {
    throw Error("backend '" + plugin.name() + "' cannot set up a context of " +
                std::to_string(n_ctx) + " tokens: " + e.what());
  }
}

}  // namespace

int cmd_perplexity(Context& ctx, const std::vector<std::string>& args) {
  Options o;
  po::options_description desc("Options");
  auto add = desc.add_options();
  add("model,m", po::value(&o.model), "GGUF model file (default: the installed SmolLM2)");
  add("file,f", po::value(&o.file), "the text to evaluate (- reads standard input)");
  add("ctx-size,c", po::value(&o.ctx_size)->default_value(512),
      "tokens per chunk, as llama-perplexity's -c (its default too); half of each is scored");
  add("chunks", po::value(&o.chunks)->default_value(-1),
      "evaluate at most N chunks; -1 = every whole chunk of the text");
  add("batch-size,b", po::value(&o.batch_size)->default_value(512),
      "most tokens sent through the kernels at once (the figures do not depend on it beyond "
      "rounding)");
  add("backend-b", po::value(&o.backend_b),
      "also evaluate on backend B and compare its next-token distributions with A's");
  add("json", po::bool_switch(&o.json), "print one JSON object (apr-perplexity-v1)");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {"model"}, kUsage, vm, 0)) return kExitOk;

  // Everything the command line alone can refuse is refused before the model is loaded.
  if (!vm.count("file")) throw UsageError("give the text to evaluate with -f FILE");
  if (o.file.empty()) throw UsageError("-f needs a file name");
  in_range(o.ctx_size, "--ctx-size", eval::kMinChunk, std::numeric_limits<int32_t>::max());
  in_range(o.chunks, "--chunks", -1, std::numeric_limits<int32_t>::max());
  if (o.chunks == 0) throw UsageError("--chunks must be at least 1, or -1 for every chunk");
  in_range(o.batch_size, "--batch-size", 1, std::numeric_limits<int32_t>::max());
  if (vm.count("backend-b") && o.backend_b.empty())
    throw UsageError("--backend-b needs a backend name");
  const std::string text = read_text(o.file);
  const std::string model_path = model_or_default(vm, o.model);

  const auto t0 = std::chrono::steady_clock::now();
  auto model = load_model(model_path);
  const ModelConfig& cfg = model->config();
  const Tokenizer& tok = model->tokenizer();
  const uint32_t n_ctx = uint32_t(o.ctx_size);
  if (n_ctx > cfg.n_ctx_train)
    throw Error("--ctx-size " + std::to_string(n_ctx) + " is more than the model's context of " +
                std::to_string(cfg.n_ctx_train) + " tokens");

  // llama-perplexity tokenizes with add_special (BOS where the tokenizer adds it) and without
  // parse_special: control tokens written in the text are plain text. It refuses tokenizers that
  // add EOS; apr adds none.
  const bool add_bos = tok.add_bos() && tok.bos_id() >= 0;
  std::vector<int32_t> tokens;
  if (add_bos) tokens.push_back(tok.bos_id());
  const std::vector<int32_t> body = tok.encode(text, false, false);
  tokens.insert(tokens.end(), body.begin(), body.end());
  if (tokens.size() < n_ctx)
    throw Error("the text has " + std::to_string(tokens.size()) + " tokens; --ctx-size " +
                std::to_string(n_ctx) + " needs at least " + std::to_string(n_ctx) +
                " for one chunk");

  eval::EvalOptions eo;
  eo.n_ctx = n_ctx;
  eo.max_chunks = o.chunks;
  eo.bos = add_bos ? tok.bos_id() : -1;
  const eval::ChunkLayout layout{n_ctx};
  const uint32_t n_chunks = eval::count_chunks(tokens.size(), n_ctx, o.chunks);

  // Both backends are chosen before any work, so a typo in B fails at once.
  const BackendNeeds needs = backend_needs(*model);
  host::Plugin& plugin_a =
      select_backend(ctx.plugins(), ctx.global.backend, ctx.global.device, needs);
  host::Plugin* plugin_b =
      vm.count("backend-b") ? &select_backend(ctx.plugins(), o.backend_b, ctx.global.device, needs)
                            : nullptr;
  const uint32_t n_batch = uint32_t(std::min<int64_t>(o.batch_size, n_ctx));
  auto session_a = open_session(*model, plugin_a, ctx.global, n_ctx, n_batch);
  std::unique_ptr<Session> session_b;
  if (plugin_b) session_b = open_session(*model, *plugin_b, ctx.global, n_ctx, n_batch);
  eval::SessionLogits source_a(*session_a, plugin_a.name());
  std::optional<eval::SessionLogits> source_b;
  if (session_b) source_b.emplace(*session_b, plugin_b->name());
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::cerr << "apr: perplexity over " << n_chunks << " chunk" << (n_chunks == 1 ? "" : "s")
            << " of " << n_ctx << " tokens (" << tokens.size() << " in the text; "
            << layout.scored() << " scored per chunk), batch " << n_batch << ", on "
            << plugin_a.name() << (plugin_b ? " and " + plugin_b->name() : std::string()) << "\n";

  std::vector<nlohmann::json> chunk_rows;
  auto on_chunk = [&](const eval::ChunkReport& rep, const eval::EvalResult& r) {
    nlohmann::json row = {{"chunk", rep.chunk + 1}, {"perplexity", r.a.perplexity()}};
    if (r.b) {
      row["perplexity_b"] = r.b->perplexity();
      row["kl_mean"] = rep.kl_mean;
      row["kl_max"] = rep.kl_max;
      row["top1_agreement"] = rep.top1_agreement;
    }
    chunk_rows.push_back(std::move(row));
    if (o.json) return;
    if (!r.b) {
      std::cout << "[" << rep.chunk + 1 << "]" << fixed(r.a.perplexity(), 4) << "," << std::flush;
    } else {
      std::cout << "[" << rep.chunk + 1 << "] PPL A " << fixed(r.a.perplexity(), 4) << "  B "
                << fixed(r.b->perplexity(), 4) << "  chunk KL mean " << sci(rep.kl_mean) << " max "
                << sci(rep.kl_max) << "  top-1 " << fixed(100 * rep.top1_agreement, 2) << " %\n"
                << std::flush;
    }
  };
  const auto t1 = std::chrono::steady_clock::now();
  const eval::EvalResult r =
      eval::evaluate(tokens, eo, source_a, source_b ? &*source_b : nullptr, on_chunk);
  const double eval_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();

  if (o.json) {
    nlohmann::json j;
    j["schema"] = "apr-perplexity-v1";
    j["model"] = model_path;
    j["architecture"] = cfg.arch_name;
    j["file"] = o.file;
    j["backend"] = plugin_a.name();
    j["plugin_version"] = plugin_a.version();
    j["device"] = plugin_a.devices().at(ctx.global.device).name;
    j["n_tokens"] = r.n_tokens;
    j["add_bos"] = add_bos;
    j["n_ctx"] = r.n_ctx;
    j["n_batch"] = n_batch;
    j["n_chunks"] = r.n_chunks;
    j["n_scored"] = r.n_scored();
    j["perplexity"] = r.a.perplexity();
    j["perplexity_uncertainty"] = r.a.perplexity_uncertainty();
    j["nll_mean"] = r.a.mean();
    if (r.b) {
      j["backend_b"] = plugin_b->name();
      j["plugin_version_b"] = plugin_b->version();
      j["device_b"] = plugin_b->devices().at(ctx.global.device).name;
      j["perplexity_b"] = r.b->perplexity();
      j["perplexity_b_uncertainty"] = r.b->perplexity_uncertainty();
      j["nll_mean_b"] = r.b->mean();
      j["kl_mean"] = r.kl_mean();
      j["kl_max"] = r.kl_max;
      j["top1_agreement"] = r.top1_agreement();
      nlohmann::json worst = nlohmann::json::array();
      for (const auto& w : r.worst)
        worst.push_back({{"chunk", w.chunk + 1},
                         {"position", w.position},
                         {"token", w.token},
                         {"token_text", tok.token_to_piece(w.token, true)},
                         {"kl", w.kl},
                         {"top_a", w.top_a},
                         {"top_b", w.top_b}});
      j["worst"] = std::move(worst);
    }
    j["chunks"] = chunk_rows;
    j["timings"] = {{"load_s", load_s},
                    {"eval_s", eval_s},
                    {"per_chunk_s", r.n_chunks ? eval_s / r.n_chunks : 0.0}};
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }

  std::cout << "\n";
  if (!r.b) {
    std::cout << "Final estimate: PPL = " << fixed(r.a.perplexity(), 4) << " +/- "
              << fixed(r.a.perplexity_uncertainty(), 5) << "\n";
  } else {
    std::cout << "Final estimate: PPL A (" << plugin_a.name()
              << ") = " << fixed(r.a.perplexity(), 4) << " +/- "
              << fixed(r.a.perplexity_uncertainty(), 5) << "\n"
              << "                PPL B (" << plugin_b->name()
              << ") = " << fixed(r.b->perplexity(), 4) << " +/- "
              << fixed(r.b->perplexity_uncertainty(), 5) << "\n"
              << "KL(A || B) over " << r.n_scored() << " scored positions: mean "
              << sci(r.kl_mean()) << ", max " << sci(r.kl_max) << "; top-1 agreement "
              << fixed(100 * r.top1_agreement(), 2) << " %\n";
    if (r.worst.empty()) {
      std::cout << "worst positions: none (the distributions agree exactly everywhere)\n";
    } else {
      std::cout << "worst positions (chunk, position in chunk, token, KL, top-1 of A / B):\n";
      for (const auto& w : r.worst)
        std::cout << "  [" << w.chunk + 1 << "] " << w.position << "  " << w.token << " "
                  << quoted_piece(tok, w.token) << "  KL " << sci(w.kl) << "  top-1 "
                  << quoted_piece(tok, w.top_a) << " / " << quoted_piece(tok, w.top_b) << "\n";
    }
  }
  std::cerr << "apr: " << r.n_scored() << " tokens scored in " << fixed(eval_s, 2) << " s ("
            << fixed(r.n_chunks ? eval_s / r.n_chunks : 0.0, 2) << " s per chunk)\n";
  return kExitOk;
}

}  // namespace apr::cli
