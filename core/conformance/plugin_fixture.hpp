// SPDX-License-Identifier: MIT
// Loads the backend plugin under test (config().plugin_path), opens config().device and offers
// guarded device buffers. The suite talks to the plugin only through the C table, exactly as the
// host does, so it runs unchanged against any backend; weight types the plugin does not claim
// (capability query, or weight_create's APR_ERR_UNSUPPORTED for plugins older than ABI 1.2) are
// passed over and named in a note.
#pragma once

#include <apr/plugin.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.hpp"
#include "config.hpp"
#include "plugin_handle/plugin_library.hpp"
#include "ref_dequant.hpp"
#include "sink_recorder.hpp"

namespace kernel_tests {

class Plugin {
 public:
  static Plugin& instance() {
    static Plugin plugin;
    return plugin;
  }

  const apr_plugin_api& api() const { return *api_; }
  apr_device* device() const { return device_; }
  bool skipped() const { return !skip_reason_.empty(); }
  const std::string& skip_reason() const { return skip_reason_; }
  std::string error() const { return api_->error_message(); }

  uint32_t device_index() const { return conformance::config().device; }
  const std::string& path() const { return path_; }

  // Opens a second device with a given thread count (for determinism checks); nullptr on failure.
  apr_device* open_device(uint32_t n_threads) {
    apr_device_options options{sizeof(apr_device_options), n_threads};
    apr_device* d = nullptr;
    return api_->device_open(device_index(), &options, &d) == APR_OK ? d : nullptr;
  }

  // The capability query (ABI 1.2), if the plugin has one.
  bool has_caps() const { return has_caps_; }
  const apr_device_caps& caps() const { return caps_; }
  // Whether the device reports APR_FEATURE_* `bit` (never, without a capability query).
  bool has_feature(uint64_t bit) const { return has_caps_ && (caps_.features & bit) == bit; }
  // Whether the table has the unary kernel (ABI 1.3; may be NULL or beyond an older table).
  bool has_unary() const { return APR_STRUCT_HAS(api_, apr_plugin_api, unary) && api_->unary; }

  // Whether the plugin claims weight type `type`: from the capability query when it has one,
  // else (a plugin older than 1.2) whether weight_create accepts a one-row weight of it.
  bool claims(uint32_t type) {
    if (has_caps_) return type < 64 && ((caps_.weight_types >> type) & 1u) != 0;
    std::mt19937_64 rng(type);
    const uint64_t n_cols = apr_test::block_size(type) == 1 ? 32 : 256;
    std::vector<uint8_t> bytes = apr_test::random_blocks(type, n_cols, rng);
    apr_weight_desc desc{sizeof desc, type, 0, n_cols, 1, bytes.data(), bytes.size(), "claims"};
    apr_weight* w = nullptr;
    const apr_status s = api_->weight_create(device_, &desc, &w);
    if (s == APR_OK) api_->weight_free(device_, w);
    return s != APR_ERR_UNSUPPORTED;
  }
  // The claimed subset of `types`, with a note naming the rest.
  std::vector<uint32_t> claimed(const std::vector<uint32_t>& types) {
    std::vector<uint32_t> out;
    std::string skipped;
    for (uint32_t t : types) {
      if (claims(t))
        out.push_back(t);
      else
        skipped += std::string(skipped.empty() ? "" : " ") + apr_test::ref_type_name(t);
    }
    if (!skipped.empty()) conformance::note("not claimed, not checked: " + skipped);
    return out;
  }

  ~Plugin() {
    if (api_) {
      if (device_) api_->device_close(device_);
      if (initialised_) api_->shutdown();
    }
  }

 private:
  Plugin() {
    path_ = conformance::config().plugin_path;
    // Loading problems are failures, not skips: a missing or broken .so is a build defect.
    try {
      lib_ = std::make_unique<apr::PluginLibrary>(path_);
    } catch (const std::exception& e) {
      throw std::runtime_error(path_ + ": " + e.what());
    }
    api_ = &lib_->api();
    if (api_->struct_size < APR_PLUGIN_API_SIZE_V1_0)
      throw std::runtime_error(path_ + ": function table smaller than ABI 1.0");

    apr_probe_result probe{};
    probe.struct_size = sizeof probe;
    if (api_->probe(&probe) != APR_OK || probe.score == 0) {
      skip("plugin '" + std::string(api_->name) + "' is not usable here: " + probe.reason);
      return;
    }
    host_ = apr_host{sizeof(apr_host),   APR_ABI_MAJOR, APR_ABI_MINOR,
                     "apr_kernel_tests", nullptr,       nullptr};
    if (api_->init(&host_) != APR_OK)
      throw std::runtime_error(path_ + ": init failed: " + api_->error_message());
    initialised_ = true;
    if (api_->device_count() <= device_index()) {
      skip("plugin '" + std::string(api_->name) + "' has no device " +
           std::to_string(device_index()));
      return;
    }
    device_ = open_device(0);  // 0 threads: the plugin default
    if (!device_) throw std::runtime_error(path_ + ": device_open failed: " + error());
    if (api_->abi_minor >= 2 && APR_STRUCT_HAS(api_, apr_plugin_api, device_caps) &&
        api_->device_caps) {
      caps_.struct_size = sizeof caps_;
      if (api_->device_caps(device_index(), &caps_) != APR_OK)
        throw std::runtime_error(path_ + ": device_caps failed: " + error());
      has_caps_ = true;
    }
  }

  // The check is then reported as skipped (runner.hpp); the kernel suite exits 77 if all were.
  void skip(const std::string& reason) { skip_reason_ = reason; }

  std::string path_;
  std::unique_ptr<apr::PluginLibrary> lib_;
  const apr_plugin_api* api_ = nullptr;
  apr_host host_{};
  bool initialised_ = false;
  apr_device* device_ = nullptr;
  std::string skip_reason_;
  apr_device_caps caps_{};
  bool has_caps_ = false;
};

// Every test starts with this: a plugin whose probe says "unusable" skips the whole suite.
#define KERNEL_TEST_PLUGIN_OR_SKIP(p)                             \
  ::kernel_tests::Plugin& p = ::kernel_tests::Plugin::instance(); \
  if (p.skipped()) throw ::conformance::CheckSkipped {            \
      p.skip_reason()                                             \
    }

// A check of an operation of ABI 1.3 skips on a device that does not report its feature (the
// host refuses the models that need it there, so the plugin owes nothing).
#define KERNEL_TEST_FEATURE_OR_SKIP(p, bit)                                                  \
  if (!(p).has_feature(bit)) throw ::conformance::CheckSkipped {                             \
      std::string("the device does not report " #bit) + ((p).has_caps() ? "" : " (no caps)") \
    }

#define REQUIRE_APR_OK(p, call)                 \
  do {                                          \
    const apr_status apr_test_status_ = (call); \
    INFO(#call << " -> " << p.error());         \
    REQUIRE(apr_test_status_ == APR_OK);        \
  } while (0)

// A device buffer of n floats surrounded by guard bytes. The payload starts at a nonzero offset
// that is not a multiple of 16, and everything (guards and payload) starts out as known bytes, so
// writes outside the intended view are caught.
class GuardedBuffer {
 public:
  static constexpr uint64_t kFrontGuard = 260;  // bytes; a multiple of 4 only
  static constexpr uint64_t kBackGuard = 256;
  static constexpr uint8_t kGuardByte = 0xA5;

  GuardedBuffer(Plugin& p, uint64_t n_floats, float fill = std::numeric_limits<float>::quiet_NaN())
      : p_(p), n_(n_floats) {
    const uint64_t total = kFrontGuard + n_ * 4 + kBackGuard;
    REQUIRE_APR_OK(p_, p_.api().buffer_alloc(p_.device(), total, &buf_));
    std::vector<uint8_t> init(total, kGuardByte);
    for (uint64_t i = 0; i < n_; ++i) std::memcpy(&init[kFrontGuard + 4 * i], &fill, 4);
    REQUIRE_APR_OK(p_, p_.api().buffer_write(p_.device(), buf_, 0, init.data(), total));
  }
  ~GuardedBuffer() { p_.api().buffer_free(p_.device(), buf_); }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;

  apr_buffer* get() const { return buf_; }
  uint64_t offset() const { return kFrontGuard; }
  uint64_t size() const { return n_; }

  void write(const std::vector<float>& data, uint64_t first = 0) {
    REQUIRE(first + data.size() <= n_);
    REQUIRE_APR_OK(p_, p_.api().buffer_write(p_.device(), buf_, kFrontGuard + 4 * first,
                                             data.data(), data.size() * 4));
  }
  std::vector<float> read() const {
    std::vector<float> out(n_);
    REQUIRE_APR_OK(p_, p_.api().buffer_read(p_.device(), buf_, kFrontGuard, out.data(), n_ * 4));
    return out;
  }
  // REQUIREs that no byte outside the payload changed.
  void check_guards() const {
    const uint64_t total = kFrontGuard + n_ * 4 + kBackGuard;
    std::vector<uint8_t> all(total);
    REQUIRE_APR_OK(p_, p_.api().buffer_read(p_.device(), buf_, 0, all.data(), total));
    uint64_t bad = 0;
    for (uint64_t i = 0; i < kFrontGuard; ++i) bad += all[i] != kGuardByte;
    for (uint64_t i = kFrontGuard + n_ * 4; i < total; ++i) bad += all[i] != kGuardByte;
    INFO("guard bytes overwritten around a buffer of " << n_ << " floats");
    REQUIRE(bad == 0);
  }

 private:
  Plugin& p_;
  uint64_t n_;
  apr_buffer* buf_ = nullptr;
};

// A weight uploaded from host bytes; the bytes stay alive as long as the weight (so the
// persistent flag is honest).
class Weight {
 public:
  Weight(Plugin& p, apr_type type, uint64_t n_rows, uint64_t n_cols, std::vector<uint8_t> bytes,
         bool persistent, const char* name = "test.weight")
      : p_(p), bytes_(std::move(bytes)) {
    apr_weight_desc desc{sizeof(apr_weight_desc),
                         type,
                         persistent ? APR_WEIGHT_DATA_PERSISTENT : 0u,
                         n_cols,
                         n_rows,
                         bytes_.data(),
                         bytes_.size(),
                         name};
    REQUIRE_APR_OK(p_, p_.api().weight_create(p_.device(), &desc, &w_));
    if (!persistent) std::fill(bytes_.begin(), bytes_.end(), uint8_t{0xEE});  // must be copied
  }
  ~Weight() { p_.api().weight_free(p_.device(), w_); }
  Weight(const Weight&) = delete;
  Weight& operator=(const Weight&) = delete;
  const apr_weight* get() const { return w_; }

 private:
  Plugin& p_;
  std::vector<uint8_t> bytes_;
  apr_weight* w_ = nullptr;
};

// A weight type the plugin claims, preferring a block-quantized one (Q8_0), for checks that need
// some weight but not a particular type.
inline uint32_t any_claimed_type(Plugin& p) {
  for (uint32_t t : {apr_test::kQ8_0, apr_test::kF16, apr_test::kF32})
    if (p.claims(t)) return t;
  for (uint32_t t : apr_test::ref_types())
    if (p.claims(t)) return t;
  throw conformance::CheckFailure{"the plugin claims none of the ggml weight types"};
}

// Normalised squared error sum (a-b)^2 / sum b^2 against a float64 reference; REQUIREs no NaN
// and the error at most `tolerance`.
inline void check_close(const std::vector<float>& actual, const std::vector<double>& expected,
                        double tolerance, const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  double num = 0.0, den = 0.0;
  uint64_t nans = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(actual[i]) || std::isnan(expected[i])) ++nans;
    const double d = static_cast<double>(actual[i]) - expected[i];
    num += d * d;
    den += expected[i] * expected[i];
  }
  INFO(what << ": " << nans << " NaN of " << actual.size() << ", normalised error "
            << (den > 0 ? num / den : num) << " (tolerance " << tolerance << ")");
  REQUIRE(nans == 0);
  REQUIRE(den > 0.0);  // an all-zero reference would make the check meaningless
  REQUIRE(num / den <= tolerance);
}

// Installs a sink for the duration of a scope and removes it afterwards.
class ScopedSink {
 public:
  ScopedSink(Plugin& p, SinkRecorder& recorder) : p_(p) {
    const apr_trace_sink s = recorder.sink();
    REQUIRE_APR_OK(p_, p_.api().set_trace_sink(p_.device(), &s));
  }
  ~ScopedSink() { p_.api().set_trace_sink(p_.device(), nullptr); }

 private:
  Plugin& p_;
};

inline std::vector<float> random_floats(std::mt19937_64& rng, size_t n, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

}  // namespace kernel_tests
