// SPDX-License-Identifier: MIT
// Portable kernels: any CPU, any architecture.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "isa_kernels.hpp"
#include "weight_formats.hpp"

#define APR_ISA_NS scalar
#define APR_ISA_LEVEL 0
#include "isa_impl.hpp"
