// SPDX-License-Identifier: MIT
// Failure reporting across the C boundary: kernels throw Failure, the API wrappers turn it into a
// status code and a thread-local message. The machinery is the SDK's (apr/plugin_sdk.hpp).
#pragma once

#include <apr/plugin_sdk.hpp>

namespace apr_cpu {

using apr_sdk::fail;
using apr_sdk::Failure;
using apr_sdk::guarded;
using apr_sdk::invalid;
using apr_sdk::last_error;
using apr_sdk::num;
using apr_sdk::set_last_error;

}  // namespace apr_cpu
