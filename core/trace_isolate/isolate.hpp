// SPDX-License-Identifier: MIT
// `apr bisect --isolate`: at the first divergence, side B's kernel for that stage runs alone on
// side A's recorded inputs. If it then agrees with A, B's kernel is right and received bad input
// (the error is inherited from upstream, e.g. a cache it read); if not, B's kernel is wrong.
#pragma once

#include <cstdint>

#include "trace_compare/stage_diff.hpp"
#include "trace_isolate/kernel_case.hpp"

namespace apr {
class Model;
namespace host {
class Plugin;
}
}  // namespace apr

namespace apr::isolate {

struct Isolation {
  KernelCase kernel_case;      // what ran: A's inputs and output
  trace::DiffMetrics metrics;  // B's kernel on A's inputs against A's output
  bool kernel_at_fault = false;
};

// Runs the case of (step, layer, stage) from A's trace on device `device` of plugin B, `ubatch`
// being how B split the prompt. Throws apr::Error when A's trace lacks an input or B fails.
Isolation isolate(const Model& model, const trace::TraceDirectory& a, const host::Plugin& b,
                  uint32_t device, uint32_t threads, uint32_t step, uint32_t layer, apr_stage stage,
                  uint32_t ubatch, const trace::Thresholds& thresholds);

}  // namespace apr::isolate
