// SPDX-License-Identifier: MIT
// Runs a model on a backend with a trace sink attached: the prompt pass (step 0), optionally
// split into micro-batches, then N greedy decode steps, writing the planned stages of every step
// and the manifest into a trace directory.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <apr/plugin.h>

#include "trace_capture/trace_plan.hpp"
#include "trace_format/manifest.hpp"

namespace apr {
class Model;
namespace host {
class Plugin;
}
}  // namespace apr

namespace apr::trace {

// What `apr trace` and `apr bisect` run when given neither --prompt nor --tokens.
constexpr const char* kDefaultTracePrompt = "What is 2+2?";

// `<model-stem>-trace/` beside the model.
std::filesystem::path default_trace_dir(const std::filesystem::path& model_path);

struct TraceOptions {
  std::filesystem::path model_path;   // recorded in the manifest, hashed
  std::optional<std::string> prompt;  // recorded in the manifest when the tokens came from text
  uint32_t n_threads = 0;
  uint32_t device_index = 0;
  // Decode steps after the prompt, one token each through the KV cache; step k's stages go to
  // DIR/step-k/.
  uint32_t decode_steps = 0;
  // The tokens fed at steps 1..decode_steps; empty: this side's own greedy choices.
  std::vector<int32_t> step_tokens;
  // The prompt's micro-batch size (llama.cpp's -ub); 0 or >= the prompt: one batch.
  uint32_t ubatch = 0;
};

struct TraceResult {
  Manifest manifest;
  // Planned stages of the model (ModelConfig::has_stage) the backend never emitted in some
  // planned layers; layers holds APR_LAYER_NONE for whole-model stages.
  struct Missing {
    apr_stage stage = 0;
    std::vector<uint32_t> layers;
  };
  std::vector<Missing> not_emitted;
  // Remarks for stderr, e.g. a leftover of an interrupted run that was removed.
  std::vector<std::string> notes;
};

// Step 0 covers every prompt token (a split prompt's micro-batches are stitched), each decode
// step its one token. The directory is replaced as a whole when the trace is complete (see
// trace_txn.hpp); on any failure, or SIGINT or SIGTERM, it is left as it was. Throws apr::Error
// when the plan's layers lie outside the model, step_tokens are fewer than the steps, a file
// cannot be written, another trace is writing `dir`, or the backend fails.
TraceResult trace_model(const host::Plugin& plugin, const Model& model,
                        std::span<const int32_t> tokens, const TracePlan& plan,
                        const std::filesystem::path& dir, const TraceOptions& options);

}  // namespace apr::trace
