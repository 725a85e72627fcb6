// SPDX-License-Identifier: MIT
#include "trace_format/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "common/error.hpp"

namespace apr::trace {

namespace {

std::atomic<bool> g_simulate_full{false};
std::atomic<size_t> g_bytes_before_failure{0};

[[noreturn]] void fail(const std::filesystem::path& path, const char* what, int err) {
  throw Error("cannot write " + path.string() + ": " + what + ": " + std::strerror(err));
}

// Writes everything or returns the errno that stopped it.
int write_all(int fd, const std::byte* data, size_t size) {
  size_t limit = size;
  const bool simulate = g_simulate_full.load();
  if (simulate) limit = std::min(size, g_bytes_before_failure.load());
  size_t done = 0;
  while (done < limit) {
    const ssize_t n = ::write(fd, data + done, limit - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return simulate ? ENOSPC : 0;
}

void sync_directory(const std::filesystem::path& dir) {
  // Makes the rename itself durable; failure here loses nothing already promised, so it is
  // not reported.
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void simulate_disk_full_for_testing(bool enabled, size_t bytes_before_failure) {
  g_bytes_before_failure = bytes_before_failure;
  g_simulate_full = enabled;
}

void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  const std::filesystem::path dir = path.parent_path();
  std::string tmpl = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) fail(path, "cannot create a temporary file", errno);

  auto abandon = [&](const char* what, int err) {
    ::close(fd);
    ::unlink(tmpl.c_str());
    fail(path, what, err);
  };
  if (int err = write_all(fd, bytes.data(), bytes.size())) abandon("write failed", err);
  if (::fsync(fd) != 0) abandon("fsync failed", errno);
  // Temporaries from mkstemp are 0600; a trace is meant to be shared like any other output.
  ::fchmod(fd, 0644);
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    fail(path, "close failed", err);
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmpl.c_str());
    fail(path, "rename failed", err);
  }
  sync_directory(dir);
}

}  // namespace apr::trace
