// SPDX-License-Identifier: MIT
// The error type that carries an apr_status and a one-line message up to the C entry points.
#pragma once

// The SDK's (apr/plugin_sdk.hpp), shared by every in-tree plugin.
#include <apr/plugin_sdk.hpp>

namespace apr_vk {

using PluginError = apr_sdk::Failure;
using apr_sdk::fail;
using apr_sdk::require;

}  // namespace apr_vk
