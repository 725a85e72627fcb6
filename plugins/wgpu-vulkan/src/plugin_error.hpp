// SPDX-License-Identifier: MIT
// Errors: the kit's apr_sdk::Failure, which carries an apr_status and a one-line message up to
// the kit's entry points (apr/kit/failure.hpp). Vulkan's own exceptions are mapped there too, by
// VulkanBackend::classify in plugin_entry.cpp.
#pragma once

#include <apr/plugin_sdk.hpp>

namespace apr_vk {

using PluginError = apr_sdk::Failure;
using apr_sdk::fail;
using apr_sdk::require;

}  // namespace apr_vk
