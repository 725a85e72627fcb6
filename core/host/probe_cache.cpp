// SPDX-License-Identifier: MIT
#include "host/probe_cache.hpp"

#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "common/error.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace apr::host {
namespace {

constexpr int kFormat = 2;
constexpr int64_t kTransientSeconds = 600;
constexpr size_t kMaxCacheBytes = 8 << 20;
constexpr size_t kMaxEntries = 512;
constexpr const char* kFileName = "plugin-probes.json";

// The whole file, or nothing when it is missing, not a regular file or larger than max_bytes
// (checked before reading: /proc files report size 0 and are read up to the bound).
std::string read_small_file(const fs::path& p, size_t max_bytes) {
  std::error_code ec;
  const auto status = fs::status(p, ec);
  if (ec || !fs::is_regular_file(status)) return {};
  const uintmax_t size = fs::file_size(p, ec);
  if (ec || size > max_bytes) return {};
  std::ifstream in(p, std::ios::binary);
  if (!in) return {};
  std::string s(size ? static_cast<size_t>(size) + 1 : max_bytes + 1, '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<size_t>(in.gcount()));
  return s.size() > max_bytes ? std::string() : s;
}

// Variables that choose drivers or devices: a different value may give a different probe answer.
bool steers_drivers(std::string_view name) {
  static constexpr std::string_view prefixes[] = {
      "APR_", "VK_",  "MESA_", "LP_",  "GALLIUM_", "CUDA_", "NVIDIA_",         "__NV",
      "__GL", "DRI_", "LIBGL", "ROCR", "HIP_",     "ZINK",  "LD_LIBRARY_PATH", "LD_PRELOAD"};
  for (auto p : prefixes)
    if (name.substr(0, p.size()) == p) return true;
  return false;
}

std::string environment_digest() {
  std::vector<std::string> vars;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    const std::string_view name = kv.substr(0, kv.find('='));
    if (steers_drivers(name) && name != "APR_PLUGIN_PATH") vars.emplace_back(kv);
  }
  std::sort(vars.begin(), vars.end());
  std::string all;
  for (const auto& v : vars) all += v + '\n';
  std::ostringstream s;
  s << std::hex << std::hash<std::string>{}(all);
  return s.str();
}

std::string boot_id() {
  std::string id = read_small_file("/proc/sys/kernel/random/boot_id", 64);
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A refusal that another try may not repeat: the machine was busy or short of memory.
bool transient(const ProbeReport& r) {
  return !r.usable && (r.reason.find(" took longer than ") != std::string::npos ||
                       r.reason.find("killed with SIGKILL") != std::string::npos);
}

}  // namespace

std::string ProbeCache::key(const fs::path& plugin) const {
  return context_ + "|" + plugin.string();
}

fs::path ProbeCache::default_dir() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg && *xdg == '/') return fs::path(xdg) / "apr";
  const char* home = std::getenv("HOME");
  if (home && *home == '/') return fs::path(home) / ".cache" / "apr";
  return {};
}

std::optional<ProbeCache::Entry> ProbeCache::identity(const fs::path& plugin) {
  struct stat st {};
  if (::stat(plugin.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  Entry e;
  e.size = static_cast<uint64_t>(st.st_size);
  e.mtime_ns = static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
               static_cast<uint64_t>(st.st_mtim.tv_nsec);
  e.inode = static_cast<uint64_t>(st.st_ino);
  return e;
}

ProbeCache::ProbeCache(fs::path dir) {
  if (dir.empty()) dir = default_dir();
  if (dir.empty()) return;
  file_ = dir / kFileName;
  context_ = "apr " APR_VERSION_STRING ", ABI " + std::to_string(APR_ABI_MAJOR) + "." +
             std::to_string(APR_ABI_MINOR) + ", boot " + boot_id() + ", env " +
             environment_digest();
  const std::string text = read_small_file(file_, kMaxCacheBytes);
  if (text.empty()) return;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  try {
    if (j.is_discarded() || !j.is_object() || j.value("format", 0) != kFormat) return;
    for (const auto& [k, v] : j.at("entries").items()) {
      Entry e;
      e.size = v.at("size").get<uint64_t>();
      e.mtime_ns = v.at("mtime_ns").get<uint64_t>();
      e.inode = v.at("inode").get<uint64_t>();
      e.stored_at = v.at("stored_at").get<int64_t>();
      e.report = v.at("report").get<std::string>();
      entries_[k] = std::move(e);
    }
  } catch (const std::exception& e) {
    spdlog::debug("ignoring probe cache {}: {}", file_.string(), e.what());
    entries_.clear();
  }
}

std::optional<ProbeReport> ProbeCache::find(const fs::path& plugin) const {
  const auto it = entries_.find(key(plugin));
  if (it == entries_.end()) return std::nullopt;
  const auto now = identity(plugin);
  if (!now || now->size != it->second.size || now->mtime_ns != it->second.mtime_ns ||
      now->inode != it->second.inode)
    return std::nullopt;
  try {
    ProbeReport r = report_from_json(it->second.report);
    if (transient(r) && now_seconds() - it->second.stored_at > kTransientSeconds)
      return std::nullopt;
    return r;
  } catch (const Error& e) {
    spdlog::debug("ignoring cached probe of {}: {}", plugin.string(), e.what());
    return std::nullopt;
  }
}

void ProbeCache::store(const fs::path& plugin, const ProbeReport& report) {
  if (file_.empty()) return;
  auto e = identity(plugin);
  if (!e) return;
  e->report = to_json(report);
  e->stored_at = now_seconds();
  entries_[key(plugin)] = std::move(*e);
  dirty_ = true;
}

void ProbeCache::save() const {
  if (!dirty_ || file_.empty()) return;
  nlohmann::json j = {{"format", kFormat}};
  j["entries"] = nlohmann::json::object();
  // The newest entries whose files still exist, at most kMaxEntries.
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [k, e] : entries_) {
    std::error_code ec;
    if (fs::exists(k.substr(k.find('|') + 1), ec)) order.emplace_back(e.stored_at, k);
  }
  std::sort(order.rbegin(), order.rend());
  if (order.size() > kMaxEntries) order.resize(kMaxEntries);
  for (const auto& [stored_at, k] : order) {
    const Entry& e = entries_.at(k);
    j["entries"][k] = {{"size", e.size},
                       {"mtime_ns", e.mtime_ns},
                       {"inode", e.inode},
                       {"stored_at", e.stored_at},
                       {"report", e.report}};
  }
  std::error_code ec;
  fs::create_directories(file_.parent_path(), ec);
  const fs::path tmp = file_.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!out.flush()) {
      spdlog::debug("cannot write probe cache {}", tmp.string());
      fs::remove(tmp, ec);
      return;
    }
  }
  fs::rename(tmp, file_, ec);
  if (ec) {
    spdlog::debug("cannot write probe cache {}: {}", file_.string(), ec.message());
    fs::remove(tmp, ec);
  }
}

}  // namespace apr::host
