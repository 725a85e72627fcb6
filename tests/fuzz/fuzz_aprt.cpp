// SPDX-License-Identifier: MIT
// APRT reader and trace manifest: the same bytes are read as an APRT tensor file (from memory and
// from disk) and as a manifest.json, whose writer must then reproduce what it accepted.
#include <span>

#include "common/error.hpp"
#include "fuzz_support.hpp"
#include "trace_format/aprt.hpp"
#include "trace_format/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto dir = [] {
    auto d = apr::fuzz::scratch_path("aprt");
    std::filesystem::create_directories(d);
    return d;
  }();
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    (void)apr::trace::decode_aprt(bytes, "fuzz-input.bin");
  } catch (const apr::Error&) {
  }
  const auto bin = dir / "stage.bin";
  apr::fuzz::write_file(bin, data, size);
  try {
    (void)apr::trace::read_aprt(bin);
  } catch (const apr::Error&) {
  }
  const auto manifest = dir / apr::trace::kManifestFileName;
  apr::fuzz::write_file(manifest, data, size);
  try {
    const auto m = apr::trace::read_manifest(manifest);
    (void)apr::trace::manifest_to_json(m);
  } catch (const apr::Error&) {
  }
  return 0;
}
