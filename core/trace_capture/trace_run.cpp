// SPDX-License-Identifier: MIT
#include "trace_capture/trace_run.hpp"

#include <filesystem>

#include "common/error.hpp"
#include "host/plugin_host.hpp"
#include "model/model.hpp"
#include "runtime/sampler.hpp"
#include "runtime/session.hpp"
#include "trace_capture/interrupt.hpp"
#include "trace_capture/trace_writer.hpp"
#include "trace_format/sha256.hpp"
#include "trace_format/stages.hpp"
#include "trace_format/trace_txn.hpp"

namespace apr::trace {

std::filesystem::path default_trace_dir(const std::filesystem::path& model_path) {
  return model_path.parent_path() / (model_path.stem().string() + "-trace");
}

TraceResult trace_model(const host::Plugin& plugin, const Model& model,
                        std::span<const int32_t> tokens, const TracePlan& plan,
                        const std::filesystem::path& dir, const TraceOptions& options) {
  const ModelConfig& cfg = model.config();
  if (tokens.empty()) throw Error("nothing to trace: the prompt has no tokens");
  const LayerRange& layers = plan.layers();
  if (layers.begin >= cfg.n_layer || layers.end > cfg.n_layer)
    throw Error("--save-tensor-layers " + std::to_string(layers.begin) + ".." +
                std::to_string(layers.end) + " lies outside the model's " +
                std::to_string(cfg.n_layer) + " layers (0.." + std::to_string(cfg.n_layer) + ")");

  TraceResult result;
  Manifest& m = result.manifest;
  m.model_path = std::filesystem::absolute(options.model_path).lexically_normal().string();
  m.model_sha256 = sha256_file_hex(options.model_path);
  m.architecture = cfg.arch_name;
  m.backend = std::string(plugin.name());
  m.plugin_version = std::string(plugin.version());
  m.prompt = options.prompt;
  m.token_ids.assign(tokens.begin(), tokens.end());
  const uint32_t n_prompt = static_cast<uint32_t>(tokens.size());
  const uint32_t steps = options.decode_steps;
  if (!options.step_tokens.empty() && options.step_tokens.size() < steps)
    throw Error(std::to_string(steps) + " decode steps need as many step tokens; " +
                std::to_string(options.step_tokens.size()) + " were given");
  const bool split = options.ubatch != 0 && options.ubatch < n_prompt;
  m.ubatch = split ? options.ubatch : 0;

  SessionOptions so;
  so.n_ctx = n_prompt + steps;
  so.n_batch = split ? options.ubatch : n_prompt;
  so.n_threads = options.n_threads;
  so.device_index = options.device_index;
  Session session(model, plugin, so);

  // From here on a signal or an error leaves `dir` as it was: the files go to a staging
  // directory that replaces `dir` only once the manifest is written.
  InterruptGuard guard;
  TraceTransaction txn(dir);
  result.notes = txn.notes();
  TraceWriter writer(txn.staging(), plan, split);
  session.set_trace_sink(writer.sink());
  try {
    writer.begin_step(0);
    const std::vector<float>* logits = &session.forward(tokens);
    writer.end_step();
    m.steps.push_back({0, 0, m.token_ids, argmax(*logits)});
    for (uint32_t k = 1; k <= steps; ++k) {
      const int32_t token =
          options.step_tokens.empty() ? *m.steps.back().next_token : options.step_tokens[k - 1];
      writer.begin_step(k);
      logits = &session.forward(std::span(&token, 1));
      writer.end_step();
      m.steps.push_back({k, n_prompt + k - 1, {token}, argmax(*logits)});
    }
  } catch (const std::exception& e) {
    session.set_trace_sink(nullptr);
    // The sink's own failure (disk full) is the cause; the backend's abort is its echo.
    throw_if_interrupted();
    if (writer.error()) throw Error(*writer.error());
    throw Error(std::string("forward pass failed on backend ") + m.backend + ": " + e.what());
  }
  session.set_trace_sink(nullptr);
  if (writer.error()) throw Error(*writer.error());

  throw_if_interrupted();
  m.files = writer.files();
  write_manifest(txn.staging(), m);
  throw_if_interrupted();
  txn.commit();

  for (apr_stage s : stages_in_forward_order()) {
    // A stage the model's family does not have (qkv_bias without biases, q_norm in llama) is
    // not missing.
    if (!plan.wants_stage(s) || !cfg.has_stage(s)) continue;
    TraceResult::Missing missing{s, {}};
    auto emitted = [&](uint32_t layer) {
      for (const auto& f : m.files)
        if (f.step == 0 && f.stage == s && f.layer == layer) return true;
      return false;
    };
    if (is_whole_model_stage(s)) {
      if (!emitted(APR_LAYER_NONE)) missing.layers.push_back(APR_LAYER_NONE);
    } else {
      for (uint32_t l = layers.begin; l < layers.end; ++l)
        if (plan.wants(s, l) && !emitted(l)) missing.layers.push_back(l);
    }
    if (!missing.layers.empty()) result.not_emitted.push_back(std::move(missing));
  }
  return result;
}

}  // namespace apr::trace
