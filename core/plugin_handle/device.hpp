// SPDX-License-Identifier: MIT
// An opened plugin device and RAII handles of its buffers and weights, over the plugin's C table:
// the one way to drive a plugin, used by the host's session, the conformance suite and the
// tests. Every failed call becomes a BackendError carrying the plugin's own message.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

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
  // Opens device `index` of an initialised plugin; `backend` names it in messages, `abi_minor` is
  // the negotiated minor version (it decides which optional members may be used).
  Device(const apr_plugin_api& api, uint32_t abi_minor, std::string backend, uint32_t index,
         uint32_t n_threads);
  // Drives a device opened elsewhere (the conformance suite's fixture); it is not closed here.
  struct Borrowed {};
  Device(Borrowed, const apr_plugin_api& api, uint32_t abi_minor, std::string backend,
         apr_device* handle)
      : api_(api),
        abi_minor_(abi_minor),
        backend_(std::move(backend)),
        handle_(handle),
        owned_(false) {}
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const apr_plugin_api& api() const { return api_; }
  apr_device* handle() const { return handle_; }
  uint32_t index() const { return index_; }
  const std::string& backend() const { return backend_; }

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
  // ABI 1.3; the host checks has_unary() (through the model's needs) before a model uses it.
  bool has_unary() const {
    return abi_minor_ >= 3 && APR_STRUCT_HAS(&api_, apr_plugin_api, unary) && api_.unary;
  }
  void unary(const apr_unary_args& a);

  // ABI 1.2 step capture: whether the plugin has step markers, and the markers themselves.
  bool has_step_markers() const;
  void step_begin(const apr_step_args& a) { check(api_.step_begin(handle_, &a), "step_begin"); }
  void step_end(const apr_step_args& a) { check(api_.step_end(handle_, &a), "step_end"); }

  // Throws BackendError("<backend>: <what> failed (<status>): <plugin message>") unless status is
  // APR_OK.
  void check(apr_status status, const char* what) const {
    if (status != APR_OK) fail(status, what);
  }

 private:
  [[noreturn]] void fail(apr_status status, const char* what) const;

  const apr_plugin_api& api_;
  uint32_t abi_minor_;
  std::string backend_;
  apr_device* handle_ = nullptr;
  uint32_t index_ = 0;
  bool owned_ = true;
};

// Fills struct_size for an ABI argument struct; every other member starts zeroed.
template <typename T>
T abi_struct() {
  T t{};
  t.struct_size = sizeof(T);
  return t;
}

// "invalid argument", "out of memory", ... for a status code.
const char* status_name(apr_status status);

}  // namespace apr
