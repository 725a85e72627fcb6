#include "host/backend.hpp"

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

void Weight::reset() {
  if (handle_) device_->api().weight_free(device_->handle(), handle_);
  handle_ = nullptr;
}

Device::Device(const host::Plugin& plugin, uint32_t device_index, uint32_t n_threads)
    : plugin_(plugin), api_(plugin.api()), index_(device_index) {
  if (device_index >= plugin.devices().size())
    throw Error("device " + std::to_string(device_index) + " does not exist: backend '" +
                std::string(plugin.name()) + "' has " + std::to_string(plugin.devices().size()) +
                " device(s)");
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

void Device::fail(apr_status status, const char* what) const {
  const char* msg = api_.error_message();
  throw BackendError(std::string(plugin_.name()) + ": " + what + " failed (" + status_name(status) +
                     "): " + ((msg && *msg) ? msg : "no message"));
}

}  // namespace apr
