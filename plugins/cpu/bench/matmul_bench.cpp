// SPDX-License-Identifier: MIT
// Usage: apr_cpu_matmul_bench [plugin.so] [n_threads]
// Times decode (1 row) and prefill (128 rows) matmuls of 896x4864 and 4864x896 weights in
// every weight type (APR_BENCH_TYPES="Q4_0 Q8_0" picks some) with random blocks, and prints weight
// bandwidth (decode) and GFLOP/s (prefill).
#include <apr/plugin.h>
#include <apr/kit/names.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "plugin_handle/device.hpp"
#include "plugin_handle/plugin_library.hpp"

namespace {

using TypeInfo = apr_sdk::WeightType;

// Random raw blocks with finite, modest fp16 scales at the usual offsets of each format.
std::vector<uint8_t> random_weight(const TypeInfo& t, uint64_t n_rows, uint64_t n_cols,
                                   std::mt19937& rng) {
  const uint64_t n_blocks = n_rows * n_cols / t.block_elems;
  std::vector<uint8_t> bytes(n_blocks * t.block_bytes);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
  const uint16_t small_half = 0x2000;  // about 2^-7
  // Byte offsets of each block's fp16 scales (random bytes there could be NaN or subnormal).
  std::vector<uint32_t> halves;
  switch (t.id) {
    case APR_TYPE_Q4_0:
    case APR_TYPE_Q5_0:
    case APR_TYPE_Q8_0:
      halves = {0};
      break;
    case APR_TYPE_Q4_1:
    case APR_TYPE_Q5_1:
    case APR_TYPE_Q4_K:
    case APR_TYPE_Q5_K:
      halves = {0, 2};
      break;
    case APR_TYPE_Q2_K:
      halves = {80, 82};
      break;
    case APR_TYPE_Q3_K:
      halves = {108};
      break;
    case APR_TYPE_Q6_K:
      halves = {208};
      break;
    default:
      break;
  }
  for (uint64_t b = 0; b < n_blocks; ++b) {
    uint8_t* blk = bytes.data() + b * t.block_bytes;
    for (uint32_t h : halves) std::memcpy(blk + h, &small_half, 2);
    // Plain floats of modest magnitude: random bits would be NaN or subnormal in part, and
    // subnormal arithmetic runs many times slower than the kernels do on real weights.
    if (t.id == APR_TYPE_F16) {
      const uint16_t h = static_cast<uint16_t>(0x3000 | (rng() & 0x3FF) | ((rng() & 1) << 15));
      std::memcpy(blk, &h, 2);
    } else if (t.id == APR_TYPE_BF16) {
      const uint16_t h = static_cast<uint16_t>(0x3C00 | (rng() & 0x7F) | ((rng() & 1) << 15));
      std::memcpy(blk, &h, 2);
    } else if (t.id == APR_TYPE_F32) {
      const uint32_t f = 0x3C000000u | (static_cast<uint32_t>(rng()) & 0x7FFFFFu) |
                         (static_cast<uint32_t>(rng() & 1) << 31);
      std::memcpy(blk, &f, 4);
    }
  }
  return bytes;
}

}  // namespace

int main(int argc, char** argv) try {
  const char* path = argc > 1 && *argv[1] ? argv[1] : APR_BENCH_DEFAULT_PLUGIN;
  const uint32_t n_threads = argc > 2 ? static_cast<uint32_t>(std::atoi(argv[2])) : 0;
  apr::PluginLibrary lib(path);
  const apr_plugin_api& api = lib.api();
  apr_host host{sizeof(apr_host), APR_ABI_MAJOR, APR_ABI_MINOR, "bench", nullptr, nullptr};
  if (api.init(&host) != APR_OK)
    throw std::runtime_error(std::string("init: ") + api.error_message());
  struct Shutdown {
    const apr_plugin_api& api;
    ~Shutdown() { api.shutdown(); }
  } shutdown{api};
  auto info = apr::abi_struct<apr_device_info>();
  if (api.device_info(0, &info) != APR_OK)
    throw std::runtime_error(std::string("device_info: ") + api.error_message());
  apr::Device dev(api, apr::check_table(api), api.name, 0, n_threads);
  std::printf("%s: %s\n", info.name, info.description);

  // Quantized types first, then the float ones; APR_BENCH_TYPES="Q4_0 Q8_0" limits the run.
  const apr_type order[] = {APR_TYPE_Q8_0, APR_TYPE_Q4_0, APR_TYPE_Q4_1, APR_TYPE_Q5_0,
                            APR_TYPE_Q5_1, APR_TYPE_Q2_K, APR_TYPE_Q3_K, APR_TYPE_Q4_K,
                            APR_TYPE_Q5_K, APR_TYPE_Q6_K, APR_TYPE_F16,  APR_TYPE_BF16,
                            APR_TYPE_F32};
  const char* only = std::getenv("APR_BENCH_TYPES");
  std::vector<TypeInfo> types;
  for (apr_type id : order) {
    const TypeInfo& t = *apr_sdk::weight_type(id);
    const std::string list = std::string(" ") + (only ? only : "") + " ";
    std::string needle = " ";
    needle.append(t.name).append(" ");
    if (!only || !*only || list.find(needle) != std::string::npos) types.push_back(t);
  }
  const uint64_t shapes[][2] = {{4864, 896}, {896, 4864}};  // {n_out, n_in}
  std::mt19937 rng(42);
  for (const TypeInfo& t : types)
    for (const auto& shape : shapes) {
      const uint64_t n_out = shape[0], n_in = shape[1];
      if (n_in % t.block_elems != 0) continue;  // e.g. K-quants need rows of 256
      std::vector<uint8_t> w = random_weight(t, n_out, n_in, rng);
      const apr_weight_desc desc{
          sizeof desc, t.id, APR_WEIGHT_DATA_PERSISTENT, n_in, n_out, w.data(), w.size(), "bench"};
      apr::Weight weight = dev.create_weight(desc);
      for (uint32_t n_rows : {1u, 128u}) {
        std::vector<float> x(n_rows * n_in);
        std::uniform_real_distribution<float> u(-1.0f, 1.0f);
        for (float& v : x) v = u(rng);
        apr::Buffer bx = dev.alloc(x.size() * 4), by = dev.alloc(uint64_t{n_rows} * n_out * 4);
        dev.write(bx, 0, x.data(), x.size() * 4);
        const apr_matmul_args args{sizeof args, weight.get(), bx.get(), 0, 0, n_rows, nullptr,
                                   0,           by.get(),     0,        0};
        int iters = 0;
        timespec cpu0{}, cpu1{};
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
        const auto start = std::chrono::steady_clock::now();
        double seconds = 0;
        do {
          dev.matmul(args);
          ++iters;
          seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        } while (seconds < 0.5 || iters < 3);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
        // CPU time of the whole process per call: on a loaded machine wall time includes time
        // spent descheduled; with one thread this is the kernel's own time.
        const double cpu_per_call =
            ((cpu1.tv_sec - cpu0.tv_sec) + 1e-9 * (cpu1.tv_nsec - cpu0.tv_nsec)) / iters;
        const double per_call = seconds / iters;
        const double gbps = static_cast<double>(w.size()) / per_call / 1e9;
        const double gflops = 2.0 * n_rows * n_out * n_in / per_call / 1e9;
        std::printf(
            "%-5s %4llux%-4llu rows %3u: %8.3f ms  %7.2f GB/s of weights  %7.2f GFLOP/s  "
            "(CPU %8.3f ms/call)\n",
            std::string(t.name).c_str(), static_cast<unsigned long long>(n_out),
            static_cast<unsigned long long>(n_in), n_rows, per_call * 1e3, gbps, gflops,
            cpu_per_call * 1e3);
      }
    }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "apr_cpu_matmul_bench: %s\n", e.what());
  return 1;
}
