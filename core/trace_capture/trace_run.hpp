// SPDX-License-Identifier: MIT
// Runs one forward pass of a model on a backend with a trace sink attached, writing the planned
// stages and the manifest into a trace directory.
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
};

struct TraceResult {
  Manifest manifest;
  // Planned stages the backend never emitted in some planned layers, e.g. qkv_bias on a model
  // without biases; layers holds APR_LAYER_NONE for whole-model stages.
  struct Missing {
    apr_stage stage = 0;
    std::vector<uint32_t> layers;
  };
  std::vector<Missing> not_emitted;
  // Remarks for stderr, e.g. a leftover of an interrupted run that was removed.
  std::vector<std::string> notes;
};

// The whole prompt runs as one batch so every stage covers every token. The directory is
// replaced as a whole when the trace is complete (see trace_txn.hpp); on any failure, or SIGINT
// or SIGTERM, it is left as it was. Throws apr::Error when the plan's layers lie outside the
// model, a file cannot be written, another trace is writing `dir`, or the backend fails.
TraceResult trace_model(const host::Plugin& plugin, const Model& model,
                        std::span<const int32_t> tokens, const TracePlan& plan,
                        const std::filesystem::path& dir, const TraceOptions& options);

}  // namespace apr::trace
