// SPDX-License-Identifier: MIT
// A kernel case on disk (`apr bisect --export-case DIR`, `apr plugin-check --case DIR`):
//   DIR/case.json        format apr-kernel-case-v1: stage, kernel, layer, step, pos0, rows,
//                        micro-batch, the model dimensions and constants the kernel is called
//                        with (the layer's own RoPE base and window; the constants of newer
//                        families only where they are in use, absent meaning off, so older cases
//                        read unchanged), token ids (embedding), the tolerance, where the case
//                        came from, and one entry per file below with its role and shape
//   DIR/inputs/<role>.bin   activations and cache rows (APRT)
//   DIR/vectors/<role>.bin  norm weights, biases, rope factors (APRT)
//   DIR/matrices/<role>.bin weight matrices in their GGUF encoding (raw bytes; type in case.json)
//   DIR/expected.bin        side A's output of the stage (APRT)
#pragma once

#include <filesystem>
#include <string>

#include "trace_isolate/kernel_case.hpp"

namespace apr::isolate {

constexpr const char* kCaseFormat = "apr-kernel-case-v1";

// When a replayed output passes: the bisect verdict's two thresholds.
struct CaseTolerance {
  double min_cosine = 0.999;
  double max_nmse = 1e-5;
};

// What case.json says of where the case came from, for the reader's orientation only.
struct CaseSource {
  std::string model_path, model_sha256, backend_a, backend_b;
};

// Writes the case into `dir` (created; must not exist or be empty). Throws apr::Error.
void write_case(const KernelCase& c, const CaseTolerance& tol, const CaseSource& source,
                const std::filesystem::path& dir);

// Reads and checks a case directory: every field for type and range, every file for presence,
// size and shape, matrices for their type's row size. Throws apr::Error naming the file and field.
KernelCase read_case(const std::filesystem::path& dir, CaseTolerance* tol = nullptr);

}  // namespace apr::isolate
