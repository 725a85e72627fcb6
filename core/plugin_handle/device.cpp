// SPDX-License-Identifier: MIT
#include "plugin_handle/device.hpp"

#include <utility>

namespace apr {

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

void Weight::reset() {
  if (handle_) device_->api().weight_free(device_->handle(), handle_);
  handle_ = nullptr;
}

Device::Device(const apr_plugin_api& api, uint32_t abi_minor, std::string backend, uint32_t index,
               uint32_t n_threads)
    : api_(api), abi_minor_(abi_minor), backend_(std::move(backend)), index_(index) {
  auto options = abi_struct<apr_device_options>();
  options.n_threads = n_threads;
  check(api_.device_open(index, &options, &handle_), "device_open");
}

Device::~Device() {
  if (handle_ && owned_) api_.device_close(handle_);
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
  return abi_minor_ >= 2 && APR_STRUCT_HAS(&api_, apr_plugin_api, step_end) &&
         api_.step_begin != nullptr && api_.step_end != nullptr;
}

void Device::unary(const apr_unary_args& a) {
  if (!has_unary())
    throw BackendError(backend_ + ": the plugin has no unary kernel (plugin ABI 1.3)");
  check(api_.unary(handle_, &a), "unary");
}

void Device::fail(apr_status status, const char* what) const {
  const char* msg = api_.error_message();
  throw BackendError(backend_ + ": " + what + " failed (" + status_name(status) +
                     "): " + ((msg && *msg) ? msg : "no message"));
}

}  // namespace apr
