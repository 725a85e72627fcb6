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
// Throws apr::Error naming the file and the field at fault.
Manifest read_manifest(const std::filesystem::path& file);

}  // namespace apr::trace
