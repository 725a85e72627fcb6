// SPDX-License-Identifier: MIT
// The one place that includes Vulkan-Hpp, so every file sees the same configuration.
#pragma once

#ifndef VULKAN_HPP_DISPATCH_LOADER_DYNAMIC
#define VULKAN_HPP_DISPATCH_LOADER_DYNAMIC 1
#endif
#include <vulkan/vulkan.hpp>
