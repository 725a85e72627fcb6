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
// Written only by traces with generation steps or a prompt split into micro-batches; v1 readers
// refuse it by its format name rather than misreading step-k/ files as duplicates.
constexpr const char* kManifestFormatSteps = "apr-trace-manifest-v2";
constexpr const char* kManifestFileName = "manifest.json";
// A manifest of every stage of a 100-layer model is about 1 MiB; anything far larger is not one.
constexpr uint64_t kMaxManifestBytes = 64ull << 20;

struct ManifestFile {
  std::string path;   // relative to the trace directory, '/'-separated
  uint32_t step = 0;  // 0: the prompt pass; k >= 1: the k-th decode step (under step-k/)
  apr_stage stage = 0;
  uint32_t layer = APR_LAYER_NONE;
  std::vector<uint64_t> shape;
  std::string dtype = "f32";
};

// One forward pass of a trace: step 0 is the prompt, step k >= 1 one decode token.
struct ManifestStep {
  uint32_t step = 0;
  uint32_t pos0 = 0;            // KV-cache position of its first token
  std::vector<int32_t> tokens;  // the tokens fed
  // The greedy choice (argmax of the logits) that followed, i.e. what this side would feed next.
  std::optional<int32_t> next_token;
};

struct Manifest {
  std::string model_path;
  std::string model_sha256;
  std::string architecture;
  std::string backend;
  std::string plugin_version;
  std::optional<std::string> prompt;  // absent when token ids were given directly
  std::vector<int32_t> token_ids;
  // v2 only (empty in v1): every step, and the micro-batch size the prompt was split into (0:
  // one batch). Step 0's files are stitched row by row, so they compare with an unsplit trace.
  std::vector<ManifestStep> steps;
  uint32_t ubatch = 0;
  std::vector<ManifestFile> files;  // in forward order

  bool has_steps() const { return steps.size() > 1 || ubatch != 0; }
};

// "layer-N/<stage>.bin", or "<stage>.bin" for whole-model stages; under "step-K/" for K >= 1.
std::string stage_file_path(apr_stage stage, uint32_t layer, uint32_t step = 0);

std::string manifest_to_json(const Manifest& m);
void write_manifest(const std::filesystem::path& dir, const Manifest& m);
// Throws apr::Error naming the file and the field at fault. Every field is checked for type and
// range before it is converted (a shape of 6.7e25 is refused, not cast), shapes must fit an APRT
// file, dtype must be f32, nbytes (optional) must match the shape, no stage may appear twice in
// a step, and (v2) every file's step must be listed in "steps", numbered 0, 1, 2, ...
// Refuses anything but a regular file up to kMaxManifestBytes, without blocking on a FIFO.
Manifest read_manifest(const std::filesystem::path& file);

// The product of a file's shape (read_manifest guarantees it fits in u32).
uint64_t element_count(const ManifestFile& f);

}  // namespace apr::trace
