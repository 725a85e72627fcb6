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

// PluginHost::select, except that "auto" passes over a backend whose device cannot take the
// model's weight types (in probe-score order) instead of choosing it and failing at load.
host::Plugin& select_backend(const host::PluginHost& plugins, std::string_view backend,
                             uint32_t device, const std::vector<WeightNeed>& needs);

}  // namespace apr
