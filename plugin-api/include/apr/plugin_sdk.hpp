// SPDX-License-Identifier: MIT
// The plugin kit: optional header-only C++17 helpers that hold the glue of a backend plugin, so a
// backend writes only its devices, memory and kernels. Nothing here is part of the ABI: plugin.h
// alone is the contract, and a plugin may ignore this file (plugins/example is written in C).
//
//  kit/plugin_table.hpp   apr_sdk::plugin_table<Backend>() builds the whole apr_plugin_api from
//                         one class, and APR_SDK_PLUGIN_ENTRY exports it (start here)
//  kit/handles.hpp        bases of apr_buffer/apr_weight/apr_device; the registry of handles
//  kit/kernel_checks.hpp  every kernel's argument rules, checked before the backend runs
//  kit/names.hpp          stage names and shapes, weight-type names and block geometry
//  kit/trace_sink.hpp     the device's copy of the host's trace sink
//  kit/views.hpp          byte extents of views, range and overlap checks
//  kit/abi_structs.hpp    least struct sizes, guarded writes of output structs (APR_SDK_SET)
//  kit/failure.hpp        apr_sdk::Failure, fail/invalid/require, guarded(): errors as statuses
//
// Build plugins with only the entry point exported: the CMake package's AprPlugin::plugin target
// and the pkg-config file add the version script that does that.
#pragma once

#include <apr/kit/abi_structs.hpp>
#include <apr/kit/failure.hpp>
#include <apr/kit/handles.hpp>
#include <apr/kit/kernel_checks.hpp>
#include <apr/kit/names.hpp>
#include <apr/kit/plugin_table.hpp>
#include <apr/kit/trace_sink.hpp>
#include <apr/kit/views.hpp>
