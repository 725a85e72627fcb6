// SPDX-License-Identifier: MIT
// The host's trace sink: asks the plan which (stage, layer) pairs to copy and writes each one
// it receives as an APRT file in the trace directory, remembering its shape for the manifest.
#pragma once

#include <apr/plugin.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "trace_capture/trace_plan.hpp"
#include "trace_format/manifest.hpp"

namespace apr::trace {

class TraceWriter {
 public:
  TraceWriter(std::filesystem::path dir, TracePlan plan);
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // Valid for the writer's lifetime; hand it to Session::set_trace_sink.
  const apr_trace_sink* sink() const { return &sink_; }

  bool wants(apr_stage stage, uint32_t layer) const { return plan_.wants(stage, layer); }
  // Writes the tensor; throws apr::Error for a malformed tensor or a failed write.
  void write(const apr_trace_tensor& tensor);

  // The first error met inside emit(), which cannot throw across the plugin boundary.
  const std::optional<std::string>& error() const { return error_; }
  // Files written so far, in forward order.
  std::vector<ManifestFile> files() const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  static int32_t wants_cb(void* self, apr_stage stage, uint32_t layer);
  static apr_status emit_cb(void* self, const apr_trace_tensor* tensor);

  std::filesystem::path dir_;
  TracePlan plan_;
  apr_trace_sink sink_{};
  std::vector<ManifestFile> files_;
  std::optional<std::string> error_;
};

}  // namespace apr::trace
