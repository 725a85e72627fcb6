// SPDX-License-Identifier: MIT
#include "host/probe_report.hpp"

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace apr::host {
namespace {

using nlohmann::json;

constexpr size_t kMaxReasonBytes = 1024;
constexpr size_t kMaxReportBytes = 1 << 20;

[[noreturn]] void malformed(const std::string& what) {
  throw Error("malformed probe report: " + what);
}

const json& member(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) malformed(std::string("no '") + key + "'");
  return *it;
}

std::string text(const json& j, const char* key, size_t max_bytes, bool ascii_only) {
  const json& v = member(j, key);
  if (!v.is_string()) malformed(std::string("'") + key + "' is not a string");
  std::string s = v.get<std::string>();
  try {
    check_text(s, max_bytes, ascii_only, key);
  } catch (const Error& e) {
    malformed(e.what());
  }
  return s;
}

uint64_t number(const json& j, const char* key, uint64_t max) {
  const json& v = member(j, key);
  if (!v.is_number_unsigned()) malformed(std::string("'") + key + "' is not an unsigned number");
  const uint64_t n = v.get<uint64_t>();
  if (n > max)
    malformed(std::string("'") + key + "' is " + std::to_string(n) + ", above " +
              std::to_string(max));
  return n;
}

std::string backend_name(const json& v, const char* what) {
  if (!v.is_string()) malformed(std::string(what) + " is not a string");
  std::string s = v.get<std::string>();
  if (!valid_backend_name(s)) malformed(std::string(what) + " is not a backend name");
  return s;
}

}  // namespace

std::string to_json(const ProbeReport& r) {
  json j = {{"usable", r.usable}, {"phase", r.phase}, {"reason", r.reason}};
  if (r.usable) {
    const PluginInfo& i = r.info;
    j["name"] = i.name;
    j["version"] = i.version;
    j["description"] = i.description;
    j["aliases"] = i.aliases;
    j["abi_minor"] = i.abi_minor;
    j["score"] = i.score;
    j["probe"] = i.probe_message;
    j["devices"] = json::array();
    j["caps_probed"] = i.caps_probed;
    j["has_unary"] = i.has_unary;
    for (const auto& d : i.devices) {
      json dj = {{"index", d.index},
                 {"kind", d.kind},
                 {"memory_bytes", d.memory_bytes},
                 {"name", d.name},
                 {"description", d.description}};
      if (d.has_caps)
        dj["caps"] = {{"weight_types", d.caps.weight_types},
                      {"features", d.caps.features},
                      {"max_buffer_bytes", d.caps.max_buffer_bytes}};
      j["devices"].push_back(dj);
    }
  }
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ProbeReport report_from_json(std::string_view text_in) {
  if (text_in.size() > kMaxReportBytes) malformed("larger than 1 MiB");
  json j = json::parse(text_in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) malformed("not a JSON object");
  ProbeReport r;
  const json& usable = member(j, "usable");
  if (!usable.is_boolean()) malformed("'usable' is not a boolean");
  r.usable = usable.get<bool>();
  r.phase = text(j, "phase", 32, true);
  r.reason = text(j, "reason", kMaxReasonBytes, false);
  if (!r.usable) {
    if (r.reason.empty()) malformed("a refusal without a reason");
    return r;
  }
  PluginInfo& i = r.info;
  i.name = backend_name(member(j, "name"), "'name'");
  i.version = text(j, "version", kMaxVersionBytes, true);
  i.description = text(j, "description", kMaxDescriptionBytes, false);
  const json& aliases = member(j, "aliases");
  if (!aliases.is_array() || aliases.size() > kMaxAliases)
    malformed("'aliases' is not an array of at most 16 names");
  for (const auto& a : aliases) i.aliases.push_back(backend_name(a, "an alias"));
  i.abi_minor = static_cast<uint32_t>(number(j, "abi_minor", APR_ABI_MINOR));
  i.score = static_cast<uint32_t>(number(j, "score", UINT32_MAX));
  i.probe_message = text(j, "probe", 255, false);
  if (j.contains("caps_probed")) {
    if (!j["caps_probed"].is_boolean()) malformed("'caps_probed' is not a boolean");
    i.caps_probed = j["caps_probed"].get<bool>();
  }
  if (j.contains("has_unary")) {
    if (!j["has_unary"].is_boolean()) malformed("'has_unary' is not a boolean");
    i.has_unary = j["has_unary"].get<bool>();
  }
  const json& devices = member(j, "devices");
  if (!devices.is_array() || devices.empty() || devices.size() > kMaxDevices)
    malformed("'devices' is not an array of 1 to 256 devices");
  for (const auto& d : devices) {
    if (!d.is_object()) malformed("a device is not an object");
    DeviceDesc dd;
    dd.index = static_cast<uint32_t>(number(d, "index", kMaxDevices - 1));
    if (dd.index != i.devices.size()) malformed("device indices are not 0, 1, 2, ...");
    dd.kind = static_cast<uint32_t>(number(d, "kind", UINT32_MAX));
    dd.memory_bytes = number(d, "memory_bytes", UINT64_MAX);
    dd.name = text(d, "name", 127, false);
    dd.description = text(d, "description", 255, false);
    if (d.contains("caps")) {
      const json& c = d.at("caps");
      if (!c.is_object()) malformed("'caps' is not an object");
      dd.has_caps = true;
      dd.caps.struct_size = sizeof dd.caps;
      dd.caps.weight_types = number(c, "weight_types", UINT64_MAX);
      dd.caps.features = number(c, "features", UINT64_MAX);
      dd.caps.max_buffer_bytes = number(c, "max_buffer_bytes", UINT64_MAX);
    }
    i.devices.push_back(std::move(dd));
  }
  return r;
}

}  // namespace apr::host
