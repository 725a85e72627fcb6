// SPDX-License-Identifier: MIT
// trace_emit and the common path by which every kernel hands tensors to the host's sink.
#include <cstring>
#include <vector>

#include "arg_checks.hpp"
#include "fault_injection.hpp"
#include "kernels.hpp"

namespace apr_cpu {

void emit_tensor(const apr_device& device, apr_stage stage, uint32_t layer, const float* data,
                 uint32_t ndim, const uint64_t* shape) {
  device.trace.emit(stage, layer, data, ndim, shape);
}

void run_trace_emit(apr_device& device, const apr_trace_emit_args& a) {
  if (a.stage >= APR_STAGE_COUNT_V1_0) invalid("unknown stage " + num(a.stage));
  const uint64_t stride = a.row_stride ? a.row_stride : a.n_cols;
  if (stride < a.n_cols) invalid("row_stride " + num(stride) + " < n_cols");
  float* view = checked_view(a.buffer, a.offset, a.n_rows, a.n_cols, stride, "buffer");
  fault::perturb(a.stage, a.layer, view, a.n_rows, a.n_cols, stride);
  if (!device.sink_wants(a.stage, a.layer)) return;
  std::vector<float> copy(uint64_t{a.n_rows} * a.n_cols);
  for (uint64_t r = 0; r < a.n_rows; ++r)
    std::memcpy(copy.data() + r * a.n_cols, view + r * stride, uint64_t{a.n_cols} * sizeof(float));
  if (a.stage == APR_STAGE_LM_HEAD && a.n_rows == 1) {
    const uint64_t shape[1] = {a.n_cols};
    emit_tensor(device, a.stage, a.layer, copy.data(), 1, shape);
  } else {
    const uint64_t shape[2] = {a.n_rows, a.n_cols};
    emit_tensor(device, a.stage, a.layer, copy.data(), 2, shape);
  }
}

}  // namespace apr_cpu
