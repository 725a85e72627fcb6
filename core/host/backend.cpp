// SPDX-License-Identifier: MIT
#include "host/backend.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/error.hpp"

namespace apr {
namespace {

const char* status_name(apr_status s) {
  switch (s) {
    case APR_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case APR_ERR_UNSUPPORTED:
      return "unsupported";
    case APR_ERR_OUT_OF_MEMORY:
      return "out of memory";
    case APR_ERR_DEVICE:
      return "device error";
    case APR_ERR_UNAVAILABLE:
      return "unavailable";
    case APR_ERR_INTERNAL:
      return "internal error";
    case APR_ERR_ABORTED:
      return "aborted by trace sink";
    default:
      return "error";
  }
}

}  // namespace

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    reset();
    device_ = std::exchange(o.device_, nullptr);
    handle_ = std::exchange(o.handle_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void Buffer::reset() {
  if (handle_) device_->api().buffer_free(device_->handle(), handle_);
  handle_ = nullptr;
  size_ = 0;
}

Weight& Weight::operator=(Weight&& o) noexcept {
  if (this != &o) {
    reset();
    device_ = std::exchange(o.device_, nullptr);
    handle_ = std::exchange(o.handle_, nullptr);
  }
  return *this;
}

// The one message for a --device the backend does not have, whichever call meets it first.
void require_device(const host::Plugin& plugin, uint32_t index) {
  if (index >= plugin.devices().size())
    throw Error("device " + std::to_string(index) + " does not exist: backend '" +
                std::string(plugin.name()) + "' has " + std::to_string(plugin.devices().size()) +
                " device(s)");
}

void Weight::reset() {
  if (handle_) device_->api().weight_free(device_->handle(), handle_);
  handle_ = nullptr;
}

Device::Device(const host::Plugin& plugin, uint32_t device_index, uint32_t n_threads)
    : plugin_(plugin), api_(plugin.api()), index_(device_index) {
  require_device(plugin, device_index);
  auto options = abi_struct<apr_device_options>();
  options.n_threads = n_threads;
  check(api_.device_open(device_index, &options, &handle_), "device_open");
}

Device::~Device() {
  if (handle_) api_.device_close(handle_);
}

Buffer Device::alloc(uint64_t nbytes) {
  apr_buffer* b = nullptr;
  check(api_.buffer_alloc(handle_, nbytes, &b), "buffer_alloc");
  return Buffer(this, b, nbytes);
}

Weight Device::create_weight(const apr_weight_desc& desc) {
  apr_weight* w = nullptr;
  check(api_.weight_create(handle_, &desc, &w), "weight_create");
  return Weight(this, w);
}

void Device::write(Buffer& buffer, uint64_t offset, const void* src, uint64_t nbytes) {
  check(api_.buffer_write(handle_, buffer.get(), offset, src, nbytes), "buffer_write");
}

void Device::read(const Buffer& buffer, uint64_t offset, void* dst, uint64_t nbytes) {
  check(api_.buffer_read(handle_, buffer.get(), offset, dst, nbytes), "buffer_read");
}

void Device::synchronize() {
  check(api_.synchronize(handle_), "synchronize");
}

void Device::set_trace_sink(const apr_trace_sink* sink) {
  check(api_.set_trace_sink(handle_, sink), "set_trace_sink");
}

bool Device::has_step_markers() const {
  return plugin_.abi_minor() >= 2 && APR_STRUCT_HAS(&api_, apr_plugin_api, step_end) &&
         api_.step_begin != nullptr && api_.step_end != nullptr;
}

namespace {

std::string type_name(apr_type t) {
  static constexpr std::pair<apr_type, const char*> names[] = {
      {APR_TYPE_F32, "F32"},   {APR_TYPE_F16, "F16"},   {APR_TYPE_Q4_0, "Q4_0"},
      {APR_TYPE_Q4_1, "Q4_1"}, {APR_TYPE_Q5_0, "Q5_0"}, {APR_TYPE_Q5_1, "Q5_1"},
      {APR_TYPE_Q8_0, "Q8_0"}, {APR_TYPE_Q2_K, "Q2_K"}, {APR_TYPE_Q3_K, "Q3_K"},
      {APR_TYPE_Q4_K, "Q4_K"}, {APR_TYPE_Q5_K, "Q5_K"}, {APR_TYPE_Q6_K, "Q6_K"},
      {APR_TYPE_BF16, "BF16"}};
  for (const auto& [id, name] : names)
    if (id == t) return name;
  return "type " + std::to_string(t);
}

int backend_rank(std::string_view name) {
  static constexpr std::string_view order[] = {"cuda", "vulkan", "cpu"};
  for (size_t i = 0; i < std::size(order); ++i)
    if (order[i] == name) return static_cast<int>(i);
  return static_cast<int>(std::size(order));
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

host::Plugin& select_backend(const host::PluginHost& plugins, std::string_view backend,
                             uint32_t device, const std::vector<WeightNeed>& needs) {
  if (backend != "auto") return plugins.select(backend);
  std::vector<host::Plugin*> order;
  for (const auto& p : plugins.plugins()) order.push_back(p.get());
  std::stable_sort(order.begin(), order.end(), [](const host::Plugin* a, const host::Plugin* b) {
    if (a->score() != b->score()) return a->score() > b->score();
    return backend_rank(a->name()) < backend_rank(b->name());
  });
  std::string passed_over;
  for (host::Plugin* p : order) {
    if (device >= p->devices().size()) continue;
    std::string why;
    try {
      why = unsupported_weights(*p, device, needs);
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

void Device::fail(apr_status status, const char* what) const {
  const char* msg = api_.error_message();
  throw BackendError(std::string(plugin_.name()) + ": " + what + " failed (" + status_name(status) +
                     "): " + ((msg && *msg) ? msg : "no message"));
}

}  // namespace apr
