// SPDX-License-Identifier: MIT
// A trace sink that records what a plugin emits (shape, layer, values) and counts malformed
// emits; used by the conformance suite and the backend tests. Standard library only.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace kernel_tests {

// Records what the plugin emits through the trace sink.
struct SinkRecorder {
  struct Tensor {
    apr_stage stage;
    uint32_t layer;
    std::vector<uint64_t> shape;
    std::vector<float> data;
  };
  std::vector<Tensor> emitted;
  std::vector<std::pair<apr_stage, uint32_t>> wanted;  // empty: want nothing
  uint64_t wanted_stages = 0;                          // bit s: stage s in every layer
  bool want_all = false;                               // every stage of every layer
  apr_status emit_status = APR_OK;
  int64_t bad_emits = 0;  // emits with a malformed descriptor

  apr_trace_sink sink() {
    return apr_trace_sink{sizeof(apr_trace_sink), this, &SinkRecorder::wants_cb,
                          &SinkRecorder::emit_cb};
  }
  void want(apr_stage stage) { wanted_stages |= uint64_t{1} << stage; }
  const Tensor* find(apr_stage stage, uint32_t layer) const {
    for (const Tensor& t : emitted)
      if (t.stage == stage && t.layer == layer) return &t;
    return nullptr;
  }
  // The first emitted tensor of `stage`, whatever its layer.
  const Tensor* find(apr_stage stage) const {
    for (const Tensor& t : emitted)
      if (t.stage == stage) return &t;
    return nullptr;
  }

 private:
  static int32_t wants_cb(void* user, apr_stage stage, uint32_t layer) {
    auto* self = static_cast<SinkRecorder*>(user);
    if (self->want_all || (stage < 64 && ((self->wanted_stages >> stage) & 1u))) return 1;
    for (const auto& w : self->wanted)
      if (w.first == stage && w.second == layer) return 1;
    return 0;
  }
  static apr_status emit_cb(void* user, const apr_trace_tensor* t) {
    auto* self = static_cast<SinkRecorder*>(user);
    if (!t || t->struct_size < sizeof(apr_trace_tensor) || t->dtype != APR_TYPE_F32 ||
        t->ndim < 1 || t->ndim > 4 || !t->data) {
      ++self->bad_emits;
      return self->emit_status;
    }
    Tensor rec{t->stage, t->layer, {}, {}};
    uint64_t elems = 1;
    for (uint32_t i = 0; i < t->ndim; ++i) {
      rec.shape.push_back(t->shape[i]);
      elems *= t->shape[i];
    }
    for (uint32_t i = t->ndim; i < 4; ++i)
      if (t->shape[i] != 1) ++self->bad_emits;
    if (t->nbytes != elems * 4) {
      ++self->bad_emits;
      return self->emit_status;
    }
    rec.data.resize(elems);
    std::memcpy(rec.data.data(), t->data, elems * 4);
    self->emitted.push_back(std::move(rec));
    return self->emit_status;
  }
};

}  // namespace kernel_tests
