// SPDX-License-Identifier: MIT
// The host's side of choosing and opening a backend device: device checks, the capability query
// and the weight types a model needs. Driving the device is plugin_handle/device.hpp's.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "host/plugin_host.hpp"
#include "plugin_handle/device.hpp"

namespace apr {

// Opens device `index` of `plugin` (loading the plugin on first use): apr::Error when the
// backend has no such device, BackendError when the plugin refuses.
std::unique_ptr<Device> open_device(const host::Plugin& plugin, uint32_t index, uint32_t n_threads);

// A weight a model needs: its ggml type and the tensor that has it (for messages).
struct WeightNeed {
  apr_type type;
  std::string tensor;
};

// An operation of ABI 1.3 a model needs: a device feature bit (APR_FEATURE_*), or the unary
// kernel, and how to name it in a message.
struct OperationNeed {
  static constexpr uint64_t kUnaryKernel = 0;  // `feature` of the unary kernel's need
  uint64_t feature;
  std::string what;
};

// Throws apr::Error ("device N does not exist: backend 'x' has K device(s)") unless `index` is
// one of the plugin's devices.
void require_device(const host::Plugin& plugin, uint32_t index);

// The ABI 1.2 capability query of device `index`; nullopt when the plugin predates it (then
// weight_create is the only judge).
std::optional<apr_device_caps> device_caps(const host::Plugin& plugin, uint32_t index);

// Empty when device `index` of `plugin` claims every type in `needs`; else one line naming the
// first type it does not take, a tensor that has it, and the types it does take.
std::string unsupported_weights(const host::Plugin& plugin, uint32_t index,
                                const std::vector<WeightNeed>& needs);

// Empty when device `index` of `plugin` has every operation in `needs`; else one line naming what
// it lacks, which model family needs it, and the plugin's ABI version when that is the reason.
std::string unsupported_operations(const host::Plugin& plugin, uint32_t index,
                                   const std::vector<OperationNeed>& needs,
                                   std::string_view family);

// What a model needs of a backend device: its weight types and its family's operations.
struct BackendNeeds {
  std::vector<WeightNeed> weights;
  std::vector<OperationNeed> operations;
  std::string family;  // GGUF architecture, for messages
};

// Empty when device `index` of `plugin` can run a model with these needs; else why not (one
// line, the operations first).
std::string unsupported_needs(const host::Plugin& plugin, uint32_t index,
                              const BackendNeeds& needs);

// PluginHost::select, except that "auto" passes over a backend whose device cannot run the
// model (weight types, operations; in probe-score order) instead of choosing it and failing at
// load.
host::Plugin& select_backend(const host::PluginHost& plugins, std::string_view backend,
                             uint32_t device, const BackendNeeds& needs);

}  // namespace apr
