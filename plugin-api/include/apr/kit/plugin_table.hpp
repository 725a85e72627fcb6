// SPDX-License-Identifier: MIT
// The kit's wrapper: builds a plugin's apr_plugin_api table from one C++ class. The kit owns the
// glue every backend needs: struct-size and argument checks, buffer ranges, the registry of
// devices, buffers and weights (a foreign or freed handle is refused), exception-to-status mapping
// with the message, the host's log, the trace sink and the step-capture markers. The backend
// supplies only what is its own:
//
//   struct MyBackend {
//     static constexpr const char* kName = "mine", *kVersion = "1.0", *kDescription = "...";
//     static constexpr const char* const* kAliases = nullptr;     // or a NULL-terminated list
//     static apr_sdk::ProbeAnswer probe();                          // may run before init
//     static uint32_t device_count();  // may throw why there is none (no driver: UNAVAILABLE);
//                                      // the table then answers 0, and device_info, device_caps
//                                      // and device_open fail with that status and message
//     static apr_sdk::DeviceFacts device_info(uint32_t index);     // index already checked
//     static apr_sdk::DeviceLimits device_caps(uint32_t index);
//     static bool supports_weight_type(apr_type type);
//     static std::unique_ptr<apr_device> device_open(uint32_t index, const
//     apr_sdk::DeviceOptions&);
//     // optional: static void init(); static void shutdown();
//     // optional: static std::optional<apr_status> classify(const std::exception&);
//   };
//   struct apr_buffer : apr_sdk::BufferBase { ... };   // its destructor frees the memory
//   struct apr_weight : apr_sdk::WeightBase { ... };
//   // The kit releases a device's remaining buffers and weights before deleting it, while the
//   // device's own members (a queue, a stream) still exist for their destructors to use.
//   struct apr_device : apr_sdk::DeviceBase<apr_buffer, apr_weight> {
//     APR_SDK_DEVICE_METHODS  // buffer_alloc/write/read, weight_create, one method per kernel
//     void synchronize();
//     // optional: void step_begin(const apr_step_args&); void step_end(const apr_step_args&);
//   };
//   APR_SDK_PLUGIN_ENTRY(MyBackend)
//
// Every method may throw (apr_sdk::Failure for a status of its choice). Kernel arguments reach the
// backend after kernel_checks.hpp accepted them.
#pragma once

#include <apr/plugin.h>

#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_set>
#include <utility>

#include "abi_structs.hpp"
#include "failure.hpp"
#include "handles.hpp"
#include "kernel_checks.hpp"
#include "names.hpp"

namespace apr_sdk {

struct ProbeAnswer {
  uint32_t score = 0;  // 0: not usable here
  std::string reason;
};

struct DeviceFacts {
  uint32_t kind = APR_DEVICE_KIND_OTHER;
  uint64_t memory_bytes = 0;
  std::string name;
  std::string description;
};

struct DeviceLimits {
  uint64_t features = 0;          // APR_FEATURE_*
  uint64_t max_buffer_bytes = 0;  // 0: no fixed limit
};

struct DeviceOptions {
  uint32_t n_threads = 0;  // 0: the plugin's default
};

// The host's services, as init received them; log() is a no-op before init and after shutdown.
inline apr_host& host_services() {
  static apr_host host{};
  return host;
}
inline void log(int32_t level, const std::string& message) {
  const apr_host& h = host_services();
  if (h.log) h.log(h.user_data, level, message.c_str());
}

namespace detail {

template <typename T, typename = void>
struct has_init : std::false_type {};
template <typename T>
struct has_init<T, std::void_t<decltype(T::init())>> : std::true_type {};
template <typename T, typename = void>
struct has_shutdown : std::false_type {};
template <typename T>
struct has_shutdown<T, std::void_t<decltype(T::shutdown())>> : std::true_type {};
template <typename T, typename = void>
struct has_classify : std::false_type {};
template <typename T>
struct has_classify<T, std::void_t<decltype(T::classify(std::declval<const std::exception&>()))>>
    : std::true_type {};
template <typename T, typename = void>
struct has_step_markers : std::false_type {};
template <typename T>
struct has_step_markers<
    T, std::void_t<decltype(std::declval<T&>().step_begin(std::declval<const apr_step_args&>())),
                   decltype(std::declval<T&>().step_end(std::declval<const apr_step_args&>()))>>
    : std::true_type {};

// The devices this plugin opened and has not closed.
inline std::mutex& devices_mutex() {
  static std::mutex m;
  return m;
}
inline std::unordered_set<const void*>& open_devices() {
  static std::unordered_set<const void*> devices;
  return devices;
}

// The backend's apr_device, named through the template parameter so that the kit's templates
// are checked only where the plugin instantiates them, after it defined apr_device.
template <typename Backend>
struct device_of {
  using type = apr_device;
};

template <typename Backend>
struct Table {
  using Device = typename device_of<Backend>::type;

  template <typename Body>
  static apr_status run(const char* call, Body&& body) noexcept {
    if constexpr (has_classify<Backend>::value)
      return guarded(call, std::forward<Body>(body), &Backend::classify);
    else
      return guarded(call, std::forward<Body>(body));
  }

  static Device& device(apr_device* d) {
    if (!d) invalid("device is NULL");
    std::lock_guard lock(devices_mutex());
    if (!open_devices().count(d)) invalid("device is not an open device of this plugin");
    return *static_cast<Device*>(d);
  }

  static void check_index(uint32_t index) {
    const uint32_t count = Backend::device_count();
    if (index >= count)
      invalid("device index " + num(index) + " is out of range (" + num(count) + " devices)");
  }

  static void close(Device* d) noexcept {
    try {
      d->release_handles();
    } catch (...) {
      // Release never throws in the kit's handles; a backend destructor that does loses it here.
    }
    delete d;
  }

  // ---- lifecycle
  static apr_status init(const apr_host* host) {
    return run("init", [&] {
      const apr_host copy = copy_host(host);
      if (copy.abi_major != APR_ABI_MAJOR)
        fail(APR_ERR_UNSUPPORTED,
             "host ABI major " + num(copy.abi_major) + " is not " + num(APR_ABI_MAJOR));
      host_services() = copy;
      if constexpr (has_init<Backend>::value) Backend::init();
    });
  }
  static void shutdown() {
    {
      std::lock_guard lock(devices_mutex());
      for (const void* d : open_devices()) close(static_cast<Device*>(const_cast<void*>(d)));
      open_devices().clear();
    }
    if constexpr (has_shutdown<Backend>::value) {
      try {
        Backend::shutdown();
      } catch (...) {
        // Shutdown has no way to report.
      }
    }
    host_services() = apr_host{};
  }
  static apr_status probe(apr_probe_result* result) {
    return run("probe", [&] {
      if (!result) invalid("result is NULL");
      const ProbeAnswer answer = Backend::probe();
      APR_SDK_SET(result, score, answer.score);
      APR_SDK_SET_STRING(result, reason, answer.reason);
    });
  }
  static const char* error_message() { return last_error(); }

  // ---- devices
  static uint32_t device_count() {
    try {
      return Backend::device_count();
    } catch (...) {
      return 0;
    }
  }
  static apr_status device_info(uint32_t index, apr_device_info* info) {
    return run("device_info", [&] {
      if (!info) invalid("info is NULL");
      check_index(index);
      const DeviceFacts facts = Backend::device_info(index);
      APR_SDK_SET(info, kind, facts.kind);
      APR_SDK_SET(info, memory_bytes, facts.memory_bytes);
      APR_SDK_SET_STRING(info, name, facts.name);
      APR_SDK_SET_STRING(info, description, facts.description);
    });
  }
  static apr_status device_caps(uint32_t index, apr_device_caps* caps) {
    return run("device_caps", [&] {
      if (!caps) invalid("caps is NULL");
      check_index(index);
      uint64_t types = 0;
      for (apr_type t = 0; t < 64; ++t)
        if (weight_type(t) && Backend::supports_weight_type(t)) types |= uint64_t{1} << t;
      const DeviceLimits limits = Backend::device_caps(index);
      APR_SDK_SET(caps, weight_types, types);
      APR_SDK_SET(caps, features, limits.features);
      APR_SDK_SET(caps, max_buffer_bytes, limits.max_buffer_bytes);
    });
  }
  static apr_status device_open(uint32_t index, const apr_device_options* options,
                                apr_device** out) {
    return run("device_open", [&] {
      if (!out) invalid("device is NULL");
      *out = nullptr;
      check_index(index);
      DeviceOptions opts;
      if (options) opts.n_threads = checked_args(options, "apr_device_options").n_threads;
      std::unique_ptr<Device> d = Backend::device_open(index, opts);
      std::lock_guard lock(devices_mutex());
      open_devices().insert(d.get());
      *out = d.release();
    });
  }
  static void device_close(apr_device* d) {
    if (!d) return;
    {
      std::lock_guard lock(devices_mutex());
      if (open_devices().erase(d) == 0) return;  // not ours, or closed already
    }
    close(static_cast<Device*>(d));
  }
  static apr_status set_trace_sink(apr_device* d, const apr_trace_sink* sink) {
    return run("set_trace_sink", [&] { device(d).trace.set(sink); });
  }

  // ---- memory
  static apr_status buffer_alloc(apr_device* d, uint64_t nbytes, apr_buffer** out) {
    return run("buffer_alloc", [&] {
      Device& dev = device(d);
      if (!out) invalid("buffer is NULL");
      *out = nullptr;
      auto b = dev.buffer_alloc(nbytes);
      b->nbytes = nbytes;
      *out = dev.buffer_registry().adopt(std::move(b));
    });
  }
  static void buffer_free(apr_device* d, apr_buffer* buffer) {
    if (!d || !buffer) return;
    run("buffer_free", [&] { device(d).buffer_registry().destroy(buffer); });
  }
  static void check_transfer(uint64_t size, uint64_t offset, uint64_t nbytes, const void* host,
                             const char* host_name) {
    uint64_t end;
    if (__builtin_add_overflow(offset, nbytes, &end) || end > size)
      invalid("bytes [" + num(offset) + ", +" + num(nbytes) + ") lie outside the buffer of " +
              num(size) + " bytes");
    if (nbytes > 0 && !host) invalid(std::string(host_name) + " is NULL");
  }
  static apr_status buffer_write(apr_device* d, apr_buffer* buffer, uint64_t offset,
                                 const void* src, uint64_t nbytes) {
    return run("buffer_write", [&] {
      Device& dev = device(d);
      auto& b = dev.buffer(buffer, "buffer");
      check_transfer(b.nbytes, offset, nbytes, src, "src");
      dev.buffer_write(b, offset, src, nbytes);
    });
  }
  static apr_status buffer_read(apr_device* d, const apr_buffer* buffer, uint64_t offset, void* dst,
                                uint64_t nbytes) {
    return run("buffer_read", [&] {
      Device& dev = device(d);
      const auto& b = dev.buffer(buffer, "buffer");
      check_transfer(b.nbytes, offset, nbytes, dst, "dst");
      dev.buffer_read(b, offset, dst, nbytes);
    });
  }
  static apr_status synchronize(apr_device* d) {
    return run("synchronize", [&] { device(d).synchronize(); });
  }

  static apr_status weight_create(apr_device* d, const apr_weight_desc* desc, apr_weight** out) {
    return run("weight_create", [&] {
      Device& dev = device(d);
      if (!out) invalid("weight is NULL");
      *out = nullptr;
      const apr_weight_desc& w = checked_args(desc, "apr_weight_desc");
      const std::string name = w.name ? w.name : "(unnamed)";
      const std::string where = "tensor '" + name + "'";
      const WeightType* type = weight_type(w.type);
      if (!type || !Backend::supports_weight_type(w.type)) {
        const std::string type_name = type ? std::string(type->name) : "type " + num(w.type);
        fail(APR_ERR_UNSUPPORTED, where + ": weight type " + type_name + " (" + num(w.type) +
                                      ") is not supported by the " + Backend::kName + " plugin");
      }
      if (w.n_cols == 0 || w.n_rows == 0) invalid(where + ": empty shape");
      if (w.n_cols % type->block_elems != 0)
        invalid(where + ": n_cols " + num(w.n_cols) + " is not a multiple of the " +
                std::string(type->name) + " block size " + num(type->block_elems));
      if (w.n_cols > 0xFFFFFFFFu || w.n_rows > 0xFFFFFFFFu)
        invalid(where + ": n_cols or n_rows exceeds 2^32 - 1");
      const uint64_t row_bytes = w.n_cols / type->block_elems * type->block_bytes;
      uint64_t total;
      if (__builtin_mul_overflow(row_bytes, w.n_rows, &total) || total != w.nbytes)
        invalid(where + ": nbytes " + num(w.nbytes) + " is not n_rows " + num(w.n_rows) +
                " x row bytes " + num(row_bytes));
      if (!w.data) invalid(where + ": data is NULL");
      const WeightSpec spec{*type,     w.n_cols, w.n_rows,
                            row_bytes, w.data,   (w.flags & APR_WEIGHT_DATA_PERSISTENT) != 0,
                            name};
      auto created = dev.weight_create(spec);
      created->type = type;
      created->n_cols = w.n_cols;
      created->n_rows = w.n_rows;
      created->row_bytes = row_bytes;
      created->name = name;
      *out = dev.weight_registry().adopt(std::move(created));
    });
  }
  static void weight_free(apr_device* d, apr_weight* weight) {
    if (!d || !weight) return;
    run("weight_free", [&] { device(d).weight_registry().destroy(weight); });
  }

  // ---- kernels: struct size, then the argument rules, then the backend's method.
  template <typename Args, void (Device::*Method)(const Args&)>
  static apr_status kernel(const char* call, const char* struct_name, apr_device* d,
                           const Args* args) {
    return run(call, [&] {
      Device& dev = device(d);
      const Args& a = checked_args(args, struct_name);
      check_kernel_args(dev, a);
      (dev.*Method)(a);
    });
  }
};

}  // namespace detail

// The table of a backend (see the top of this file); static storage, valid until unload.
template <typename Backend>
const apr_plugin_api& plugin_table() {
  using T = detail::Table<Backend>;
  using Device = typename T::Device;
  static const apr_plugin_api table = [] {
    apr_plugin_api api{};
    api.struct_size = sizeof api;
    api.abi_major = APR_ABI_MAJOR;
    api.abi_minor = APR_ABI_MINOR;
    api.name = Backend::kName;
    api.version = Backend::kVersion;
    api.description = Backend::kDescription;
    api.aliases = Backend::kAliases;
    api.init = &T::init;
    api.shutdown = &T::shutdown;
    api.probe = &T::probe;
    api.error_message = &T::error_message;
    api.device_count = &T::device_count;
    api.device_info = &T::device_info;
    api.device_open = &T::device_open;
    api.device_close = &T::device_close;
    api.set_trace_sink = &T::set_trace_sink;
    api.buffer_alloc = &T::buffer_alloc;
    api.buffer_free = &T::buffer_free;
    api.buffer_write = &T::buffer_write;
    api.buffer_read = &T::buffer_read;
    api.synchronize = &T::synchronize;
    api.weight_create = &T::weight_create;
    api.weight_free = &T::weight_free;
#define APR_SDK_KERNEL_ENTRY(fn, Args)                              \
  api.fn = [](apr_device* d, const Args* a) {                       \
    return T::template kernel<Args, &Device::fn>(#fn, #Args, d, a); \
  };
    APR_SDK_KERNELS(APR_SDK_KERNEL_ENTRY)
#undef APR_SDK_KERNEL_ENTRY
    api.device_caps = &T::device_caps;
    if constexpr (detail::has_step_markers<Device>::value) {
      api.step_begin = [](apr_device* d, const apr_step_args* a) {
        return T::template kernel<apr_step_args, &Device::step_begin>("step_begin", "apr_step_args",
                                                                      d, a);
      };
      api.step_end = [](apr_device* d, const apr_step_args* a) {
        return T::template kernel<apr_step_args, &Device::step_end>("step_end", "apr_step_args", d,
                                                                    a);
      };
    }
    return api;
  }();
  return table;
}

}  // namespace apr_sdk

// Defines the plugin's one exported symbol for Backend.
#define APR_SDK_PLUGIN_ENTRY(Backend)                                                      \
  extern "C" APR_PLUGIN_EXPORT const apr_plugin_api* apr_plugin_entry(uint32_t host_major, \
                                                                      uint32_t) {          \
    return host_major == APR_ABI_MAJOR ? &::apr_sdk::plugin_table<Backend>() : nullptr;    \
  }
