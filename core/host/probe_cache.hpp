// SPDX-License-Identifier: MIT
// Remembers probe reports per plugin file so a command does not start a probe child for every
// plugin every time. An entry is used only while everything that could change the answer is the
// same: the file (path, size, modification time, inode), the host (apr and ABI version), the boot
// (a driver loaded since re-probes) and the environment variables that steer GPU drivers. A refusal
// that may be passing (a time-out, a kill by the kernel) is trusted for 10 minutes only. Lives in
// $XDG_CACHE_HOME/apr (else ~/.cache/apr); when that cannot be read or written there is no cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "host/probe_report.hpp"

namespace apr::host {

class ProbeCache {
 public:
  // `dir` empty: default_dir(). An unreadable, malformed or stale file starts an empty cache.
  explicit ProbeCache(std::filesystem::path dir = {});

  std::optional<ProbeReport> find(const std::filesystem::path& plugin) const;
  void store(const std::filesystem::path& plugin, const ProbeReport& report);
  // Writes the cache if anything was stored (temporary file + rename, so readers never see half
  // a file); failures only log at debug level.
  void save() const;

  const std::filesystem::path& file() const { return file_; }
  static std::filesystem::path default_dir();

 private:
  struct Entry {
    uint64_t size = 0, mtime_ns = 0, inode = 0;
    int64_t stored_at = 0;  // seconds since the epoch
    std::string report;     // JSON, re-checked by report_from_json on use
  };
  static std::optional<Entry> identity(const std::filesystem::path& plugin);
  std::string key(const std::filesystem::path& plugin) const;

  std::filesystem::path file_;
  // The host, boot and environment an answer holds for; part of each entry's key, so processes
  // with different environments (tests, users of two GPUs) keep their entries side by side.
  std::string context_;
  std::map<std::string, Entry> entries_;
  bool dirty_ = false;
};

}  // namespace apr::host
