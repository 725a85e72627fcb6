// SPDX-License-Identifier: MIT
// RAII wrappers over an opened plugin device: buffers, weights and checked kernel calls. Every
// failed plugin call becomes a BackendError carrying the plugin's own message.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "host/plugin_host.hpp"

namespace apr {

class BackendError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Device;

class Buffer {
 public:
  Buffer() = default;
  Buffer(Device* device, apr_buffer* handle, uint64_t size)
      : device_(device), handle_(handle), size_(size) {}
  Buffer(Buffer&& o) noexcept { *this = std::move(o); }
  Buffer& operator=(Buffer&& o) noexcept;
  ~Buffer() { reset(); }
  void reset();
  apr_buffer* get() const { return handle_; }
  uint64_t size() const { return size_; }

 private:
  Device* device_ = nullptr;
  apr_buffer* handle_ = nullptr;
  uint64_t size_ = 0;
};

class Weight {
 public:
  Weight() = default;
  Weight(Device* device, apr_weight* handle) : device_(device), handle_(handle) {}
  Weight(Weight&& o) noexcept { *this = std::move(o); }
  Weight& operator=(Weight&& o) noexcept;
  ~Weight() { reset(); }
  void reset();
  const apr_weight* get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }

 private:
  Device* device_ = nullptr;
  apr_weight* handle_ = nullptr;
};

class Device {
 public:
  Device(const host::Plugin& plugin, uint32_t device_index, uint32_t n_threads);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const host::Plugin& plugin() const { return plugin_; }
  const apr_plugin_api& api() const { return api_; }
  apr_device* handle() const { return handle_; }
  uint32_t index() const { return index_; }

  Buffer alloc(uint64_t nbytes);
  Weight create_weight(const apr_weight_desc& desc);
  void write(Buffer& buffer, uint64_t offset, const void* src, uint64_t nbytes);
  void read(const Buffer& buffer, uint64_t offset, void* dst, uint64_t nbytes);
  void synchronize();
  void set_trace_sink(const apr_trace_sink* sink);

  void embed(const apr_embed_args& a) { check(api_.embed(handle_, &a), "embed"); }
  void rms_norm(const apr_rms_norm_args& a) { check(api_.rms_norm(handle_, &a), "rms_norm"); }
  void matmul(const apr_matmul_args& a) { check(api_.matmul(handle_, &a), "matmul"); }
  void add(const apr_add_args& a) { check(api_.add(handle_, &a), "add"); }
  void rope(const apr_rope_args& a) { check(api_.rope(handle_, &a), "rope"); }
  void kv_store(const apr_kv_store_args& a) { check(api_.kv_store(handle_, &a), "kv_store"); }
  void attention(const apr_attention_args& a) { check(api_.attention(handle_, &a), "attention"); }
  void swiglu(const apr_swiglu_args& a) { check(api_.swiglu(handle_, &a), "swiglu"); }
  void trace_emit(const apr_trace_emit_args& a) {
    check(api_.trace_emit(handle_, &a), "trace_emit");
  }

  // ABI 1.2 step capture: whether the plugin has step markers, and the markers themselves.
  bool has_step_markers() const;
  void step_begin(const apr_step_args& a) { check(api_.step_begin(handle_, &a), "step_begin"); }
  void step_end(const apr_step_args& a) { check(api_.step_end(handle_, &a), "step_end"); }

  // Throws BackendError("<plugin>: <what>: <plugin message>") unless status is APR_OK.
  void check(apr_status status, const char* what) const {
    if (status != APR_OK) fail(status, what);
  }

 private:
  [[noreturn]] void fail(apr_status status, const char* what) const;

  const host::Plugin& plugin_;
  const apr_plugin_api& api_;
  apr_device* handle_ = nullptr;
  uint32_t index_ = 0;
};

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

// Fills struct_size for an ABI argument struct; every other member starts zeroed.
template <typename T>
T abi_struct() {
  T t{};
  t.struct_size = sizeof(T);
  return t;
}

}  // namespace apr
