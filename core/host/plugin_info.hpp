// SPDX-License-Identifier: MIT
// What the host knows about a plugin once it was probed: its identity, probe answer and devices,
// each string and count already checked against the bounds below. The same record comes from a
// probe child, from the probe cache, or from loading a plugin into this process.
#pragma once

#include <apr/plugin.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace apr::host {

// Bounds on what a plugin may hand the host. Anything outside them refuses the plugin.
inline constexpr size_t kMaxNameBytes = 64;          // name and each alias: [a-z0-9_-]
inline constexpr size_t kMaxVersionBytes = 64;       // printable ASCII
inline constexpr size_t kMaxDescriptionBytes = 256;  // no control characters
inline constexpr size_t kMaxAliases = 16;            // entries before the NULL terminator
inline constexpr uint32_t kMaxDevices = 256;         // device_count
inline constexpr size_t kMaxMessageBytes = 512;      // error_message(), kept after truncation

struct DeviceDesc {
  uint32_t index = 0;
  uint32_t kind = APR_DEVICE_KIND_OTHER;
  uint64_t memory_bytes = 0;
  std::string name;
  std::string description;
  // device_caps (ABI 1.2) as the probe asked it, so `auto` can judge a plugin without loading it.
  bool has_caps = false;
  apr_device_caps caps{};
};

struct PluginInfo {
  std::string name;
  std::string version;
  std::string description;
  std::vector<std::string> aliases;
  uint32_t abi_minor = 0;  // negotiated: min(host, plugin)
  uint32_t score = 0;
  std::string probe_message;
  std::vector<DeviceDesc> devices;
  // The probe asked device_caps of every device (the plugin has it); a device without has_caps
  // then failed to answer.
  bool caps_probed = false;
  // The table has the ABI 1.3 unary kernel (and speaks 1.3), so `auto` can judge a model that
  // needs it without loading the plugin.
  bool has_unary = false;
};

// Checks for the strings a plugin returns; each throws apr::Error naming `what` and the defect.
bool valid_backend_name(std::string_view name);
void check_backend_name(std::string_view name, std::string_view what);
void check_text(std::string_view text, size_t max_bytes, bool printable_ascii_only,
                std::string_view what);

// Copies a plugin's NUL-terminated string of at most max_bytes, reading at most max_bytes + 1
// bytes of it; throws apr::Error when it is longer or has no terminator within that bound.
std::string bounded_string(const char* text, size_t max_bytes, std::string_view what);
// The same for a fixed char array inside an output struct: the terminator must lie inside it.
std::string array_string(const char* array, size_t array_bytes, std::string_view what);

// A plugin's free-form message made safe for a one-line error: control characters become
// spaces, at most kMaxMessageBytes kept. NULL or empty gives "no message".
std::string sanitized_message(const char* text);

}  // namespace apr::host
