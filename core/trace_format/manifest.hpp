// SPDX-License-Identifier: MIT
// DIR/manifest.json of a trace directory: where the trace came from (model, backend, prompt)
// and, for every file, what it holds. Written without timestamps so reruns are byte-identical.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace apr::trace {

constexpr const char* kManifestFormat = "apr-trace-manifest-v1";
constexpr const char* kManifestFileName = "manifest.json";
// A manifest of every stage of a 100-layer model is about 1 MiB; anything far larger is not one.
constexpr uint64_t kMaxManifestBytes = 64ull << 20;

struct ManifestFile {
  std::string path;  // relative to the trace directory, '/'-separated
  apr_stage stage = 0;
  uint32_t layer = APR_LAYER_NONE;
  std::vector<uint64_t> shape;
  std::string dtype = "f32";
};

struct Manifest {
  std::string model_path;
  std::string model_sha256;
  std::string architecture;
  std::string backend;
  std::string plugin_version;
  std::optional<std::string> prompt;  // absent when token ids were given directly
  std::vector<int32_t> token_ids;
  std::vector<ManifestFile> files;  // in forward order
};

// "layer-N/<stage>.bin", or "<stage>.bin" for whole-model stages.
std::string stage_file_path(apr_stage stage, uint32_t layer);

std::string manifest_to_json(const Manifest& m);
void write_manifest(const std::filesystem::path& dir, const Manifest& m);
// Throws apr::Error naming the file and the field at fault. Every field is checked for type and
// range before it is converted (a shape of 6.7e25 is refused, not cast), shapes must fit an APRT
// file, dtype must be f32, nbytes (optional) must match the shape, no stage may appear twice.
// Refuses anything but a regular file up to kMaxManifestBytes, without blocking on a FIFO.
Manifest read_manifest(const std::filesystem::path& file);

// The product of a file's shape (read_manifest guarantees it fits in u32).
uint64_t element_count(const ManifestFile& f);

}  // namespace apr::trace
