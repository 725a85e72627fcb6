// SPDX-License-Identifier: MIT
// Storage for Vulkan-Hpp's default dynamic dispatcher, filled by vulkan_instance.cpp.
#include "vulkan_hpp.hpp"

VULKAN_HPP_DEFAULT_DISPATCH_LOADER_DYNAMIC_STORAGE
