// SPDX-License-Identifier: MIT
// One kernel call of the forward pass, cut out with everything it reads: the stage it produces,
// its inputs as side A of a bisect recorded them, the weights it uses and A's output. Run on side
// B's plugin it tells whether B's kernel is wrong on correct inputs (`apr bisect --isolate`);
// written to a directory it is a test a plugin's author can replay (`apr plugin-check --case`).
//
// Inputs are taken from A's trace of every stage, never recomputed: the stage before in forward
// order for the model (q_norm/k_norm before RoPE with QK-norm, attn_post_norm/ffn_post_norm
// before the residuals with sandwich norms), the residual stream entering the layer, and for
// attention the K and V of every position so far (k_post_rope and the V columns of qkv_bias, or
// qkv_matmul without biases, of each step up to this one), written straight into the plugin's
// cache buffers, so no other kernel of B runs.
#pragma once

#include <apr/plugin.h>

#include <cstdint>
#include <string>
#include <vector>

#include "host/backend.hpp"
#include "model/model_config.hpp"
#include "plugin_handle/device.hpp"
#include "trace_format/trace_dir.hpp"

namespace apr {
class Model;
}

namespace apr::isolate {

// f32 values with their shape (activations, cache rows, norm weights, biases).
struct CaseTensor {
  std::string role;
  std::vector<uint64_t> shape;
  std::vector<float> values;
};

// A weight matrix in its GGUF encoding, as weight_create receives it.
struct CaseMatrix {
  // wq, wk, wv, wqkv (phi3's fused [q|k|v]), wo, w_gate, w_up, w_down, output, token_embd. phi3's
  // fused ffn_up reaches the kernel as two matrices, its first n_ff rows as w_gate and the rest as
  // w_up, each under the fused tensor's name, as the session uploads them.
  std::string role;
  std::string name;  // the GGUF tensor name (plugins may key on it)
  uint32_t type = 0;
  uint64_t n_cols = 0, n_rows = 0;
  std::vector<uint8_t> bytes;
};

struct KernelCase {
  apr_stage stage = 0;
  uint32_t layer = APR_LAYER_NONE;
  uint32_t step = 0;    // 0: the prompt pass
  uint32_t pos0 = 0;    // position of the step's first row
  uint32_t n_rows = 0;  // rows of the step
  // Rows per kernel call as side B ran the step (a split prompt); 0: one call.
  uint32_t ubatch = 0;
  // The dimensions and constants the kernel is called with. Per-layer values (the sliding window,
  // the RoPE base of sliding-window layers) are those of `layer`: a case read back from its
  // directory holds them resolved for that layer.
  ModelConfig config;
  std::vector<int32_t> tokens;  // embedding: ids into the case's own token_embd rows
  std::vector<CaseTensor> inputs;
  std::vector<CaseTensor> vectors;  // norm, qkv_bias, output_bias, rope_factors
  std::vector<CaseMatrix> matrices;
  CaseTensor expected;  // A's output of the stage

  const CaseTensor* input(const std::string& role) const;
  const CaseTensor* vector(const std::string& role) const;
  const CaseMatrix* matrix(const std::string& role) const;
};

// The kernel of the plugin ABI that produces `stage`: "matmul", "attention", "rms_norm", ...
const char* kernel_of(apr_stage stage);

// The operations of ABI 1.3 the case's kernel calls use (none for the stages of llama and qwen2),
// named as the host's capability check names them.
std::vector<OperationNeed> case_operation_needs(const KernelCase& c);

// The case of (step, layer, stage) from side A's trace directory (it must hold every stage and a
// manifest) and the model's weights; `ubatch` is how side B split the prompt (0: one batch).
// Throws apr::Error naming what A's trace lacks.
KernelCase case_from_trace(const Model& model, const trace::TraceDirectory& a, uint32_t step,
                           uint32_t layer, apr_stage stage, uint32_t ubatch);

// Uploads the case's weights to `device`, writes its inputs into device buffers, calls its kernel
// (once per micro-batch of `ubatch` rows) and returns the stage as the device emitted it through
// its trace sink, micro-batches joined as a trace joins them. The device's trace sink is its own
// while it runs and none afterwards. A device that lacks an operation the case needs
// (case_operation_needs) is refused first, with a one-line reason naming it.
CaseTensor run_case(const KernelCase& c, Device& device);

}  // namespace apr::isolate
