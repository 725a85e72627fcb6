// SPDX-License-Identifier: MIT
#include "host/backend.hpp"

#include <spdlog/spdlog.h>
#include <apr/kit/names.hpp>

#include <algorithm>

#include "common/error.hpp"
#include "host/backend_order.hpp"

namespace apr {

// The one message for a --device the backend does not have, whichever call meets it first.
void require_device(const host::Plugin& plugin, uint32_t index) {
  if (index >= plugin.devices().size())
    throw Error("device " + std::to_string(index) + " does not exist: backend '" +
                std::string(plugin.name()) + "' has " + std::to_string(plugin.devices().size()) +
                " device(s)");
}

std::unique_ptr<Device> open_device(const host::Plugin& plugin, uint32_t index,
                                    uint32_t n_threads) {
  require_device(plugin, index);
  return std::make_unique<Device>(plugin.api(), plugin.abi_minor(), plugin.name(), index,
                                  n_threads);
}

namespace {

// The ABI's weight types by name (the plugin kit's table), any other id by number.
std::string type_name(apr_type t) {
  if (apr_sdk::is_abi_weight_type(t)) return std::string(apr_sdk::weight_type_name(t));
  return "type " + std::to_string(t);
}

}  // namespace

std::optional<apr_device_caps> device_caps(const host::Plugin& plugin, uint32_t index) {
  require_device(plugin, index);
  if (plugin.abi_minor() < 2) return std::nullopt;
  // The probe child's answer, so `auto` judges a plugin without loading it into this process.
  if (!plugin.loaded() && plugin.info().caps_probed && index < plugin.devices().size() &&
      plugin.devices()[index].has_caps)
    return plugin.devices()[index].caps;
  const apr_plugin_api& api = plugin.api();
  if (!APR_STRUCT_HAS(&api, apr_plugin_api, device_caps) || !api.device_caps) return std::nullopt;
  apr_device_caps caps{};
  caps.struct_size = sizeof caps;
  if (api.device_caps(index, &caps) != APR_OK) {
    const char* msg = api.error_message();
    throw BackendError(std::string(plugin.name()) +
                       ": device_caps failed: " + ((msg && *msg) ? msg : "no message"));
  }
  return caps;
}

std::string unsupported_weights(const host::Plugin& plugin, uint32_t index,
                                const std::vector<WeightNeed>& needs) {
  const std::optional<apr_device_caps> caps = device_caps(plugin, index);
  if (!caps) return {};
  auto claims = [&](apr_type t) { return t < 64 && ((caps->weight_types >> t) & 1u) != 0; };
  for (const WeightNeed& n : needs) {
    if (claims(n.type)) continue;
    std::string supported;
    for (apr_type t = 0; t < 64; ++t)
      if (claims(t)) supported += (supported.empty() ? "" : ", ") + type_name(t);
    return "backend '" + std::string(plugin.name()) + "' cannot load weight type " +
           type_name(n.type) + " (tensor '" + n.tensor + "'); device " + std::to_string(index) +
           " supports " + (supported.empty() ? "no weight type" : supported);
  }
  return {};
}

std::string unsupported_operations(const host::Plugin& plugin, uint32_t index,
                                   const std::vector<OperationNeed>& needs,
                                   std::string_view family) {
  if (needs.empty()) return {};
  std::string all;
  for (const OperationNeed& n : needs) all += (all.empty() ? "" : ", ") + n.what;
  const std::string backend = "backend '" + std::string(plugin.name()) + "'";
  if (plugin.abi_minor() < 3)
    return backend + " speaks plugin ABI 1." + std::to_string(plugin.abi_minor()) + ", but " +
           std::string(family) + " models need ABI 1.3 for " + all;
  const std::optional<apr_device_caps> caps = device_caps(plugin, index);
  std::string missing;
  for (const OperationNeed& n : needs) {
    // The probe's answer for the table, so judging does not load the plugin.
    const bool has = n.feature == OperationNeed::kUnaryKernel
                         ? plugin.info().has_unary
                         : caps && (caps->features & n.feature) != 0;
    if (!has) missing += (missing.empty() ? "" : ", ") + n.what;
  }
  if (missing.empty()) return {};
  return backend + " (device " + std::to_string(index) + ") lacks " + missing + ", which " +
         std::string(family) + " models need";
}

std::string unsupported_needs(const host::Plugin& plugin, uint32_t index,
                              const BackendNeeds& needs) {
  std::string why = unsupported_operations(plugin, index, needs.operations, needs.family);
  return why.empty() ? unsupported_weights(plugin, index, needs.weights) : why;
}

host::Plugin& select_backend(const host::PluginHost& plugins, std::string_view backend,
                             uint32_t device, const BackendNeeds& needs) {
  if (backend != "auto") return plugins.select(backend);
  std::vector<host::Plugin*> order;
  for (const auto& p : plugins.plugins()) order.push_back(p.get());
  std::stable_sort(order.begin(), order.end(), [](const host::Plugin* a, const host::Plugin* b) {
    if (a->score() != b->score()) return a->score() > b->score();
    return host::auto_backend_rank(a->name()) < host::auto_backend_rank(b->name());
  });
  std::string passed_over;
  for (host::Plugin* p : order) {
    if (device >= p->devices().size()) continue;
    std::string why;
    try {
      why = unsupported_needs(*p, device, needs);
    } catch (const std::exception& e) {
      why = e.what();
    }
    if (why.empty()) return plugins.select(p->name());
    spdlog::info("auto backend: passing over {}", why);
    passed_over += (passed_over.empty() ? "" : "; ") + why;
  }
  if (passed_over.empty()) return plugins.select(backend);  // nothing usable: select explains
  throw Error("no backend can run this model: " + passed_over);
}

}  // namespace apr
