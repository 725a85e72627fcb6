// SPDX-License-Identifier: MIT
// The conformance suite's SinkRecorder, installed on a backend test's device for a scope.
#pragma once

#include "conformance/sink_recorder.hpp"
#include "plugin_handle/device.hpp"

namespace apr_test {

using TraceRecorder = kernel_tests::SinkRecorder;

// Installs a recorder's sink on a device; removes it at the end of the scope.
class ScopedTraceSink {
 public:
  ScopedTraceSink(apr::Device& device, TraceRecorder& recorder) : device_(device) {
    const apr_trace_sink s = recorder.sink();
    device_.set_trace_sink(&s);
  }
  ~ScopedTraceSink() { device_.api().set_trace_sink(device_.handle(), nullptr); }
  ScopedTraceSink(const ScopedTraceSink&) = delete;
  ScopedTraceSink& operator=(const ScopedTraceSink&) = delete;

 private:
  apr::Device& device_;
};

}  // namespace apr_test
