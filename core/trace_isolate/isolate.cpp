// SPDX-License-Identifier: MIT
#include "trace_isolate/isolate.hpp"

#include "common/error.hpp"
#include "host/backend.hpp"

namespace apr::isolate {

Isolation isolate(const Model& model, const trace::TraceDirectory& a, const host::Plugin& b,
                  uint32_t device, uint32_t threads, uint32_t step, uint32_t layer, apr_stage stage,
                  uint32_t ubatch, const trace::Thresholds& thresholds) {
  Isolation out;
  out.kernel_case = case_from_trace(model, a, step, layer, stage, ubatch);
  const KernelCase& c = out.kernel_case;
  // A device of its own: nothing of B's traced run (caches, buffers) is reused.
  auto dev = open_device(b, device, threads);
  const CaseTensor got = run_case(c, *dev);
  if (got.values.size() != c.expected.values.size())
    throw Error("isolating " + std::string(kernel_of(stage)) + ": it emitted " +
                std::to_string(got.values.size()) + " values, side A's trace holds " +
                std::to_string(c.expected.values.size()));
  out.metrics = trace::compare_values(c.expected.values, got.values, 5);
  if (stage == APR_STAGE_LM_HEAD)
    out.metrics.logits = trace::compare_logits(c.expected.values, got.values, 0);
  out.kernel_at_fault = !out.metrics.passes(thresholds);
  return out;
}

}  // namespace apr::isolate
