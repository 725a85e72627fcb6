// SPDX-License-Identifier: MIT
#ifdef APR_CPU_FAULT_INJECTION

#include "fault_injection.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

#include "status.hpp"

namespace apr_cpu::fault {

namespace {

struct FaultSpec {
  bool active = false;
  apr_stage stage = 0;
  uint32_t layer = 0;
  float magnitude = 1.0f;
};

FaultSpec g_fault;

bool is_whole_model(apr_stage stage) {
  return apr_sdk::stage_info(stage)->scope == apr_sdk::StageScope::kWholeModel;
}

}  // namespace

void configure_from_environment() {
  g_fault = FaultSpec{};
  const char* env = std::getenv("APR_CPU_FAULT");
  if (!env || !*env) return;
  const std::string spec(env);
  const size_t first = spec.find(':');
  if (first == std::string::npos)
    invalid("APR_CPU_FAULT '" + spec + "' is not <layer>:<stage>[:<magnitude>]");
  const size_t second = spec.find(':', first + 1);
  const std::string layer_text = spec.substr(0, first);
  const std::string stage_text =
      spec.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
  FaultSpec f;
  f.active = true;
  if (layer_text == "none" || layer_text == "-") {
    f.layer = APR_LAYER_NONE;
  } else {
    char* end = nullptr;
    const unsigned long layer = std::strtoul(layer_text.c_str(), &end, 10);
    if (layer_text.empty() || *end != '\0' || layer >= APR_LAYER_NONE)
      invalid("APR_CPU_FAULT '" + spec + "': layer '" + layer_text + "' is not a number");
    f.layer = static_cast<uint32_t>(layer);
  }
  const apr_sdk::StageInfo* stage = apr_sdk::stage_named(stage_text);
  if (!stage) invalid("APR_CPU_FAULT '" + spec + "': unknown stage '" + stage_text + "'");
  f.stage = stage->stage;
  if (second != std::string::npos) {
    const std::string m = spec.substr(second + 1);
    char* end = nullptr;
    f.magnitude = std::strtof(m.c_str(), &end);
    if (m.empty() || *end != '\0')
      invalid("APR_CPU_FAULT '" + spec + "': magnitude '" + m + "' is not a number");
  }
  g_fault = f;
}

void perturb(apr_stage stage, uint32_t layer, float* data, uint64_t n_rows, uint64_t n_cols,
             uint64_t row_stride) {
  if (!g_fault.active || stage != g_fault.stage) return;
  // Whole-model stages have no layer worth matching; the others must match exactly.
  if (!is_whole_model(stage) && layer != g_fault.layer) return;
  for (uint64_t r = 0; r < n_rows; ++r)
    for (uint64_t c = 0; c < n_cols; ++c)
      data[r * row_stride + c] += (c % 2 == 0) ? g_fault.magnitude : -g_fault.magnitude;
}

}  // namespace apr_cpu::fault

#endif
