// SPDX-License-Identifier: MIT
// Block formats of ggml tensor types: the type table, fp16/bf16 conversion and dequantization.
#pragma once

#include "quant/dequantize.hpp"
#include "quant/half.hpp"
#include "quant/types.hpp"
