// SPDX-License-Identifier: MIT
// A trace sink for backend tests: records every tensor emitted for the stages it wants, answers
// each emit with a chosen status, and is installed on a device for the lifetime of a scope.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "plugin_handle/device.hpp"

namespace apr_test {

struct TraceRecorder {
  struct Tensor {
    apr_stage stage;
    uint32_t layer;
    std::vector<uint64_t> shape;
    std::vector<float> data;
  };
  uint64_t wanted_stages = 0;  // bit s: stage s is wanted, in every layer
  apr_status answer = APR_OK;  // what emit returns
  std::vector<Tensor> tensors;

  void want(apr_stage stage) { wanted_stages |= uint64_t{1} << stage; }
  const Tensor* find(apr_stage stage) const {
    for (const Tensor& t : tensors)
      if (t.stage == stage) return &t;
    return nullptr;
  }

  apr_trace_sink sink() {
    auto s = apr::abi_struct<apr_trace_sink>();
    s.user_data = this;
    s.wants = [](void* self, apr_stage stage, uint32_t) -> int32_t {
      return stage < 64 && ((static_cast<TraceRecorder*>(self)->wanted_stages >> stage) & 1u);
    };
    s.emit = [](void* self, const apr_trace_tensor* t) -> apr_status {
      auto* me = static_cast<TraceRecorder*>(self);
      Tensor copy{t->stage, t->layer, std::vector<uint64_t>(t->shape, t->shape + t->ndim), {}};
      copy.data.resize(t->nbytes / sizeof(float));
      std::memcpy(copy.data.data(), t->data, copy.data.size() * sizeof(float));
      me->tensors.push_back(std::move(copy));
      return me->answer;
    };
    return s;
  }
};

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
