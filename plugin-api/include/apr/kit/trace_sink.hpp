// SPDX-License-Identifier: MIT
// The device's copy of the host's trace sink. Follow plugin.h's tracing rule: emit the tensor the
// computation of the next stage used, and compute nothing extra unless wants() said yes.
#pragma once

#include <apr/plugin.h>

#include <cstring>
#include <initializer_list>

#include "failure.hpp"

namespace apr_sdk {

class TraceSink {
 public:
  // Installs sink (NULL: tracing off), refusing one that is too small or lacks a callback.
  void set(const apr_trace_sink* sink) {
    if (!sink) {
      active_ = false;
      sink_ = apr_trace_sink{};
      return;
    }
    if (sink->struct_size < APR_TRACE_SINK_SIZE_V1_0)
      invalid("apr_trace_sink.struct_size " + num(sink->struct_size) +
              " is smaller than its ABI 1.0 size " + num(size_t{APR_TRACE_SINK_SIZE_V1_0}));
    if (!sink->wants || !sink->emit) invalid("the sink's wants or emit is NULL");
    sink_ = apr_trace_sink{};
    std::memcpy(&sink_, sink, APR_TRACE_SINK_SIZE_V1_0);
    sink_.struct_size = sizeof sink_;
    active_ = true;
  }
  bool active() const { return active_; }
  bool wants(apr_stage stage, uint32_t layer) const {
    return active_ && sink_.wants(sink_.user_data, stage, layer) != 0;
  }
  // Hands a packed f32 host tensor to the host; throws APR_ERR_ABORTED when the host says stop.
  void emit(apr_stage stage, uint32_t layer, const float* data,
            std::initializer_list<uint64_t> shape) const {
    emit(stage, layer, data, static_cast<uint32_t>(shape.size()), shape.begin());
  }
  void emit(apr_stage stage, uint32_t layer, const float* data, uint32_t ndim,
            const uint64_t* shape) const {
    if (ndim < 1 || ndim > 4) fail(APR_ERR_INTERNAL, "trace tensor rank " + num(ndim));
    apr_trace_tensor t{};
    t.struct_size = sizeof t;
    t.stage = stage;
    t.layer = layer;
    t.dtype = APR_TYPE_F32;
    t.ndim = ndim;
    uint64_t elems = 1;
    for (uint32_t i = 0; i < 4; ++i) {
      t.shape[i] = i < ndim ? shape[i] : 1;
      elems *= t.shape[i];
    }
    t.data = data;
    t.nbytes = elems * sizeof(float);
    const apr_status s = active_ ? sink_.emit(sink_.user_data, &t) : APR_ERR_ABORTED;
    if (s != APR_OK)
      fail(APR_ERR_ABORTED, "the trace sink refused stage " + num(stage) + " of layer " +
                                num(layer) + " (status " + num(s) + ")");
  }

 private:
  apr_trace_sink sink_{};
  bool active_ = false;
};

// The shape trace_emit gives an n_rows x n_cols view: 1-D for the one row of LM_HEAD, else 2-D.
// Writes ndim entries of shape[] and returns ndim.
inline uint32_t emitted_shape(apr_stage stage, uint32_t n_rows, uint32_t n_cols,
                              uint64_t shape[2]) {
  if (stage == APR_STAGE_LM_HEAD && n_rows == 1) {
    shape[0] = n_cols;
    return 1;
  }
  shape[0] = n_rows;
  shape[1] = n_cols;
  return 2;
}

}  // namespace apr_sdk
