// SPDX-License-Identifier: MIT
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <random>

#include <apr/plugin.h>

#include "common/error.hpp"
#include "test_support.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/atomic_file.hpp"

using namespace apr;
using namespace apr::trace;
using apr::trace::testing::random_values;
using apr::trace::testing::ScratchDir;

namespace {

std::vector<unsigned char> file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::filesystem::path& p, const std::vector<unsigned char>& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

size_t count_entries(const std::filesystem::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST_CASE("APRT header is magic, layer and count, little endian", "[trace][aprt]") {
  ScratchDir dir("aprt-header");
  const auto values = random_values(5, 1);
  write_aprt(dir.path() / "x.bin", 0x01020304u, values);
  const auto b = file_bytes(dir.path() / "x.bin");
  REQUIRE(b.size() == 12 + 5 * 4);
  const unsigned char header[12] = {'A', 'P', 'R', 'T', 0x04, 0x03, 0x02, 0x01, 5, 0, 0, 0};
  CHECK(std::memcmp(b.data(), header, 12) == 0);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint32_t bits = std::bit_cast<uint32_t>(values[i]);
    for (int k = 0; k < 4; ++k) CHECK(b[12 + 4 * i + k] == ((bits >> (8 * k)) & 0xFF));
  }
  write_aprt(dir.path() / "none.bin", APR_LAYER_NONE, values);
  const auto n = file_bytes(dir.path() / "none.bin");
  CHECK(n[4] == 0xFF);
  CHECK(n[7] == 0xFF);
}

TEST_CASE("APRT round trip keeps NaN payloads, signed zeros and infinities", "[trace][aprt]") {
  ScratchDir dir("aprt-bits");
  const uint32_t patterns[] = {
      0x7fc00000u, 0x7fc00001u, 0xffc12345u, 0x7f800001u /* signalling */, 0x80000000u /* -0 */,
      0x00000000u, 0x7f800000u, 0xff800000u, 0x00000001u /* denormal */,   0x3f800000u};
  std::vector<float> values;
  for (uint32_t p : patterns) values.push_back(std::bit_cast<float>(p));
  write_aprt(dir.path() / "bits.bin", 7, values);
  const auto t = read_aprt(dir.path() / "bits.bin");
  CHECK(t.layer == 7);
  REQUIRE(t.values.size() == values.size());
  for (size_t i = 0; i < values.size(); ++i)
    CHECK(std::bit_cast<uint32_t>(t.values[i]) == patterns[i]);
}

TEST_CASE("APRT reader refuses malformed files without crashing", "[trace][aprt]") {
  ScratchDir dir("aprt-bad");
  const auto p = dir.path() / "bad.bin";
  write_bytes(p, {});
  CHECK_THROWS_WITH(read_aprt(p), Catch::Contains("bad.bin") && Catch::Contains("shorter"));
  write_bytes(p, {'A', 'P', 'R', 'T', 0, 0});
  CHECK_THROWS_WITH(read_aprt(p), Catch::Contains("shorter"));
  write_bytes(p, {'G', 'G', 'U', 'F', 0, 0, 0, 0, 0, 0, 0, 0});
  CHECK_THROWS_WITH(read_aprt(p), Catch::Contains("bad magic at byte offset 0"));
  // A count far beyond the file's size must not turn into an allocation or a read past the end.
  write_bytes(p, {'A', 'P', 'R', 'T', 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4});
  CHECK_THROWS_WITH(read_aprt(p),
                    Catch::Contains("byte offset 8") && Catch::Contains("4294967295"));
  write_bytes(p, {'A', 'P', 'R', 'T', 0, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4, 5});
  CHECK_THROWS_WITH(read_aprt(p), Catch::Contains("file has 17"));
  write_bytes(p, {'A', 'P', 'R', 'T', 0, 0, 0, 0, 0, 0, 0, 0});
  CHECK(read_aprt(p).values.empty());
  CHECK_THROWS_AS(read_aprt(dir.path() / "missing.bin"), Error);
  CHECK_THROWS_WITH(read_aprt(dir.path()), Catch::Contains("is a directory"));

  // Random garbage behind a valid magic: always either a tensor of the right size or an Error.
  std::mt19937 rng(42);
  for (int round = 0; round < 500; ++round) {
    std::vector<std::byte> bytes(rng() % 40);
    for (auto& b : bytes) b = std::byte(rng() & 0xFF);
    if (bytes.size() >= 4) std::memcpy(bytes.data(), "APRT", 4);
    if (bytes.size() >= 12 && (round & 1)) {
      const uint32_t count = static_cast<uint32_t>((bytes.size() - 12) / 4);
      std::memcpy(bytes.data() + 8, &count, 4);
    }
    try {
      auto t = decode_aprt(bytes, "fuzz");
      CHECK(12 + 4 * t.values.size() == bytes.size());
    } catch (const Error&) {
    }
  }
}

TEST_CASE("a failed write leaves neither the file nor a temporary", "[trace][aprt][atomic]") {
  ScratchDir dir("atomic");
  const auto values = random_values(1000, 3);
  const auto p = dir.path() / "stage.bin";

  simulate_disk_full_for_testing(true, 100);
  CHECK_THROWS_WITH(write_aprt(p, 0, values),
                    Catch::Contains("stage.bin") && Catch::Contains("No space left on device"));
  simulate_disk_full_for_testing(false);
  CHECK_FALSE(std::filesystem::exists(p));
  CHECK(count_entries(dir.path()) == 0);

  // Overwriting: an interrupted rewrite keeps the complete old file.
  write_aprt(p, 0, values);
  const auto before = file_bytes(p);
  simulate_disk_full_for_testing(true, 4000);
  CHECK_THROWS_AS(write_aprt(p, 1, random_values(1000, 4)), Error);
  simulate_disk_full_for_testing(false);
  CHECK(file_bytes(p) == before);
  CHECK(count_entries(dir.path()) == 1);
}

TEST_CASE("an unwritable or missing directory is a one-line Error", "[trace][aprt][atomic]") {
  ScratchDir dir("unwritable");
  const auto values = random_values(8, 5);
  CHECK_THROWS_WITH(write_aprt(dir.path() / "no" / "such" / "dir.bin", 0, values),
                    Catch::Contains("cannot write") && !Catch::Contains("\n"));
  std::ofstream(dir.path() / "plain-file") << "x";
  CHECK_THROWS_AS(write_aprt(dir.path() / "plain-file" / "x.bin", 0, values), Error);
  if (::geteuid() != 0) {  // root ignores directory permissions
    const auto ro = dir.path() / "read-only";
    std::filesystem::create_directory(ro);
    ::chmod(ro.c_str(), 0555);
    CHECK_THROWS_WITH(write_aprt(ro / "x.bin", 0, values),
                      Catch::Contains("Permission denied") && Catch::Contains("x.bin"));
    ::chmod(ro.c_str(), 0755);
    CHECK(count_entries(ro) == 0);
  }
}
