// SPDX-License-Identifier: MIT
#include "trace_capture/trace_writer.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <span>
#include <thread>

#include "common/error.hpp"
#include "trace_capture/interrupt.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/stages.hpp"
#include "trace_format/stitch.hpp"

namespace apr::trace {

namespace {

// Test seam for the kill and signal tests: APR_TRACE_TEST_STALL=N:MS pauses for MS
// milliseconds (or until a signal) after the Nth file, so a test can act mid-trace.
struct Stall {
  size_t after_files = 0;
  long ms = 0;
};

Stall stall_from_environment() {
  Stall s;
  if (const char* v = std::getenv("APR_TRACE_TEST_STALL")) {
    char* end = nullptr;
    s.after_files = std::strtoul(v, &end, 10);
    if (end && *end == ':') s.ms = std::strtol(end + 1, nullptr, 10);
  }
  return s;
}

void stall_if_asked(size_t files_written) {
  static const Stall stall = stall_from_environment();
  if (stall.ms <= 0 || files_written != stall.after_files) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(stall.ms);
  while (std::chrono::steady_clock::now() < until && interrupt_signal() == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

}  // namespace

TraceWriter::TraceWriter(std::filesystem::path dir, TracePlan plan, bool stitch)
    : dir_(std::move(dir)), plan_(plan), stitch_(stitch) {
  sink_.struct_size = sizeof(apr_trace_sink);
  sink_.user_data = this;
  sink_.wants = &TraceWriter::wants_cb;
  sink_.emit = &TraceWriter::emit_cb;
}

int32_t TraceWriter::wants_cb(void* self, apr_stage stage, uint32_t layer) {
  return static_cast<TraceWriter*>(self)->wants(stage, layer) ? 1 : 0;
}

apr_status TraceWriter::emit_cb(void* self, const apr_trace_tensor* tensor) {
  auto* w = static_cast<TraceWriter*>(self);
  try {
    if (!tensor) throw Error("trace sink received a null tensor");
    throw_if_interrupted();
    w->write(*tensor);
    stall_if_asked(w->files_.size());
    return APR_OK;
  } catch (const std::exception& e) {
    if (!w->error_) w->error_ = e.what();
  } catch (...) {
    if (!w->error_) w->error_ = "unknown error in the trace sink";
  }
  return APR_ERR_ABORTED;
}

void TraceWriter::write(const apr_trace_tensor& t) {
  const size_t need = offsetof(apr_trace_tensor, nbytes) + sizeof(t.nbytes);
  if (t.struct_size < need)
    throw Error("trace tensor struct_size " + std::to_string(t.struct_size) + " is too small");
  if (t.stage >= kStageCount)
    throw Error("trace tensor has unknown stage id " + std::to_string(t.stage));
  const std::string label =
      std::string(stage_name(t.stage)) + " of layer " +
      (t.layer == APR_LAYER_NONE ? std::string("(none)") : std::to_string(t.layer));
  if (!stage_exists_in_layer(t.stage, t.layer))
    throw Error("trace tensor " + label + ": that stage has no such layer");
  if (t.dtype != APR_TYPE_F32)
    throw Error("trace tensor " + label + ": dtype " + std::to_string(t.dtype) + " is not f32");
  if (t.ndim < 1 || t.ndim > 4)
    throw Error("trace tensor " + label + ": ndim " + std::to_string(t.ndim) + " is not 1..4");
  uint64_t count = 1;
  std::vector<uint64_t> shape(t.shape, t.shape + t.ndim);
  for (uint64_t d : shape) {
    if (d != 0 && count > UINT64_MAX / 4 / d)
      throw Error("trace tensor " + label + ": shape overflows");
    count *= d;
  }
  if (t.nbytes != count * sizeof(float) || (count > 0 && !t.data))
    throw Error("trace tensor " + label + ": nbytes " + std::to_string(t.nbytes) +
                " disagrees with its shape (" + std::to_string(count) + " f32 elements)");

  const std::span<const float> values(static_cast<const float*>(t.data), count);
  if (stitch_)
    hold(t.stage, t.layer, std::move(shape), values, label);
  else
    store(t.stage, t.layer, std::move(shape), values);
}

void TraceWriter::begin_step(uint32_t step) {
  held_.clear();
  step_ = step;
}

void TraceWriter::end_step() {
  try {
    for (Held& h : held_) store(h.stage, h.layer, std::move(h.shape), h.data);
  } catch (const std::exception& e) {
    if (!error_) error_ = e.what();  // the cause, not the backend's, whoever reports it
    throw;
  }
  held_.clear();
}

void TraceWriter::hold(apr_stage stage, uint32_t layer, std::vector<uint64_t> shape,
                       std::span<const float> data, const std::string& label) {
  auto it = std::find_if(held_.begin(), held_.end(),
                         [&](const Held& h) { return h.stage == stage && h.layer == layer; });
  if (it == held_.end()) it = held_.insert(held_.end(), Held{stage, layer, {}, {}});
  if (!join_micro_batch(it->shape, it->data, shape, data))
    throw Error("trace tensor " + label + ": a micro-batch's shape cannot be joined to the " +
                "previous ones of the step");
}

void TraceWriter::store(apr_stage stage, uint32_t layer, std::vector<uint64_t> shape,
                        std::span<const float> data) {
  const std::string rel = stage_file_path(stage, layer, step_);
  const std::filesystem::path path = dir_ / rel;
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec)
    throw Error("cannot create trace directory " + path.parent_path().string() + ": " +
                ec.message());
  write_aprt(path, layer, data);

  ManifestFile f{rel, step_, stage, layer, std::move(shape), "f32"};
  // A stage emitted twice in a step keeps the last one. Files arrive step by step, so only the
  // current step's, at the back, need looking at (a trace of many decode steps stays linear).
  for (auto it = files_.rbegin(); it != files_.rend() && it->step == f.step; ++it)
    if (it->stage == f.stage && it->layer == f.layer) {
      *it = std::move(f);
      return;
    }
  files_.push_back(std::move(f));
}

std::vector<ManifestFile> TraceWriter::files() const {
  std::vector<ManifestFile> out = files_;
  std::stable_sort(out.begin(), out.end(), [](const ManifestFile& a, const ManifestFile& b) {
    return std::pair(a.step, forward_rank(a.layer, a.stage)) <
           std::pair(b.step, forward_rank(b.layer, b.stage));
  });
  return out;
}

}  // namespace apr::trace
