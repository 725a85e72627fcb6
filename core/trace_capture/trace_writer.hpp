// SPDX-License-Identifier: MIT
// The host's trace sink: asks the plan which (stage, layer) pairs to copy and writes each one
// it receives as an APRT file in the trace directory (under step-K/ for decode step K),
// remembering its shape for the manifest.
#pragma once

#include <apr/plugin.h>

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "trace_capture/trace_plan.hpp"
#include "trace_format/manifest.hpp"

namespace apr::trace {

class TraceWriter {
 public:
  // With `stitch` (a prompt split into micro-batches), a step's tensors are held until
  // end_step() and a stage emitted once per micro-batch is joined into one tensor, as an unsplit
  // batch would have emitted it (trace_format/stitch.hpp). Without it, files are written at once
  // and a stage emitted twice keeps the last.
  TraceWriter(std::filesystem::path dir, TracePlan plan, bool stitch = false);
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // Valid for the writer's lifetime; hand it to Session::set_trace_sink.
  const apr_trace_sink* sink() const { return &sink_; }

  bool wants(apr_stage stage, uint32_t layer) const { return plan_.wants(stage, layer); }
  // Emits from here on belong to `step` (0 = the prompt pass).
  void begin_step(uint32_t step);
  // Writes what the step held (stitch mode); throws apr::Error for a failed write.
  void end_step();

  // Writes (or holds) the tensor; throws apr::Error for a malformed tensor, a micro-batch that
  // cannot be joined to the previous ones, or a failed write.
  void write(const apr_trace_tensor& tensor);

  // The first error met inside emit(), which cannot throw across the plugin boundary.
  const std::optional<std::string>& error() const { return error_; }
  // Files written so far, in forward order.
  std::vector<ManifestFile> files() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static int32_t wants_cb(void* self, apr_stage stage, uint32_t layer);
  static apr_status emit_cb(void* self, const apr_trace_tensor* tensor);

  struct Held {
    apr_stage stage;
    uint32_t layer;
    std::vector<uint64_t> shape;
    std::vector<float> data;
  };
  void store(apr_stage stage, uint32_t layer, std::vector<uint64_t> shape,
             std::span<const float> data);
  void hold(apr_stage stage, uint32_t layer, std::vector<uint64_t> shape,
            std::span<const float> data, const std::string& label);

  std::filesystem::path dir_;
  TracePlan plan_;
  bool stitch_ = false;
  uint32_t step_ = 0;
  std::vector<Held> held_;
  apr_trace_sink sink_{};
  std::vector<ManifestFile> files_;
  std::optional<std::string> error_;
};

}  // namespace apr::trace
