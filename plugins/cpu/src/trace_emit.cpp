// SPDX-License-Identifier: MIT
// trace_emit: a packed host copy of the view, handed to the host's sink.
#include <cstring>
#include <vector>

#include "device.hpp"
#include "fault_injection.hpp"
#include "views.hpp"

namespace apr_cpu {

void run_trace_emit(apr_device& device, const apr_trace_emit_args& a) {
  const uint64_t stride = a.row_stride ? a.row_stride : a.n_cols;
  float* view = f32_at(a.buffer, a.offset);
  fault::before_trace_emit(device, a);
  if (!device.wants(a.stage, a.layer)) return;
  std::vector<float> copy(uint64_t{a.n_rows} * a.n_cols);
  for (uint64_t r = 0; r < a.n_rows; ++r)
    std::memcpy(copy.data() + r * a.n_cols, view + r * stride, uint64_t{a.n_cols} * sizeof(float));
  uint64_t shape[2];
  const uint32_t ndim = apr_sdk::emitted_shape(a.stage, a.n_rows, a.n_cols, shape);
  device.trace.emit(a.stage, a.layer, copy.data(), ndim, shape);
}

}  // namespace apr_cpu
