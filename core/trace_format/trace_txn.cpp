// SPDX-License-Identifier: MIT
#include "trace_format/trace_txn.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2 (glibc >= 2.28)
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.hpp"

namespace apr::trace {

namespace fs = std::filesystem;

namespace {

bool is_temporary_name(const std::string& name) {
  return name.size() > 1 && name[0] == '.' && name.find(".tmp-") != std::string::npos;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool is_layer_directory_name(const std::string& name) {
  if (name.size() <= 6 || name.compare(0, 6, "layer-") != 0) return false;
  for (size_t i = 6; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  return true;
}

void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string errno_text(int err) {
  return std::strerror(err);
}

}  // namespace

bool looks_like_trace_directory(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    std::error_code skip;
    if (e.is_symlink(skip)) return false;
    if (e.is_regular_file(skip)) {
      if (name == "manifest.json" || ends_with(name, ".bin") || is_temporary_name(name)) continue;
      return false;
    }
    if (!e.is_directory(skip) || !is_layer_directory_name(name)) return false;
    for (const auto& f : fs::directory_iterator(e.path(), ec)) {
      const std::string fname = f.path().filename().string();
      if (!f.is_regular_file(skip) || f.is_symlink(skip)) return false;
      if (!ends_with(fname, ".bin") && !is_temporary_name(fname)) return false;
    }
    if (ec) return false;
  }
  return !ec;
}

TraceTransaction::TraceTransaction(fs::path target) {
  if (target.filename().empty()) target = target.parent_path();  // "dir/" names "dir"
  const std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..")
    throw Error("trace directory '" + target.string() +
                "' must name a directory that can be replaced as a whole, not '.' or '..'");
  target_ = target;
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";

  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw Error("cannot create trace directory " + parent.string() + ": " + ec.message());
  const fs::file_status st = fs::symlink_status(target_, ec);
  if (fs::is_symlink(st))
    throw Error("trace directory " + target_.string() +
                " is a symbolic link; give the directory it points to");
  if (fs::exists(st) && !fs::is_directory(st))
    throw Error("trace directory " + target_.string() + " exists and is not a directory");

  lock_path_ = parent / ("." + name + ".trace-lock");
  lock();
  try {
    // Checked under the lock, so the answer still holds when the new trace replaces it.
    if (fs::is_directory(st) && !looks_like_trace_directory(target_))
      throw Error("trace directory " + target_.string() +
                  " holds files that are not part of a trace; it would be replaced as a whole, "
                  "so choose an empty or new directory");
    remove_stale();
    std::string tmpl = (parent / ("." + name + ".trace-tmp-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data()))
      throw Error("cannot create a temporary trace directory beside " + target_.string() + ": " +
                  errno_text(errno));
    staging_ = tmpl;
    // mkdtemp makes 0700; a trace is shared like any other output.
    ::chmod(staging_.c_str(), 0755);
  } catch (...) {
    ::unlink(lock_path_.c_str());
    ::close(lock_fd_);
    throw;
  }
}

TraceTransaction::~TraceTransaction() {
  std::error_code ec;
  if (!committed_ && !staging_.empty()) fs::remove_all(staging_, ec);
  // Unlinked while still locked: a process that opened the old file retries after it sees the
  // inode changed (see lock()).
  ::unlink(lock_path_.c_str());
  ::close(lock_fd_);
}

void TraceTransaction::lock() {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int fd = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
      throw Error("cannot create the trace lock " + lock_path_.string() + ": " + errno_text(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) throw Error("another trace is writing " + target_.string());
      throw Error("cannot lock " + lock_path_.string() + ": " + errno_text(err));
    }
    // The previous holder unlinks the file on its way out; a lock on that unlinked inode
    // protects nothing, so it only counts if the path still names the locked file.
    struct stat held {
    }, named{};
    if (::fstat(fd, &held) == 0 && ::stat(lock_path_.c_str(), &named) == 0 &&
        held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
      lock_fd_ = fd;
      return;
    }
    ::close(fd);
  }
  throw Error("another trace is writing " + target_.string());
}

void TraceTransaction::remove_stale() {
  // Holding the lock means no live trace of this target exists, so every temporary of it is
  // left over from a run that was killed.
  const fs::path parent = lock_path_.parent_path();
  const std::string tmp_prefix = "." + target_.filename().string() + ".trace-tmp-";
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() > tmp_prefix.size() && n.compare(0, tmp_prefix.size(), tmp_prefix) == 0)
      stale.push_back(e.path());
  }
  for (const auto& p : stale) {
    std::error_code rm;
    fs::remove_all(p, rm);
    notes_.push_back(rm ? "cannot remove " + p.string() +
                              " left by an interrupted trace: " + rm.message()
                        : "removed " + p.string() + " left by an interrupted trace");
  }
}

void TraceTransaction::commit() {
  if (committed_) return;
  const fs::path parent = lock_path_.parent_path();
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(target_, ec);
  const bool replace = fs::exists(st);
  // Checked again: whatever replaced the target since the start is about to be removed.
  if (replace && (!fs::is_directory(st) || !looks_like_trace_directory(target_)))
    throw Error("trace directory " + target_.string() + " changed while the trace ran and now " +
                "holds something else; it was left alone");
  if (!replace) {
    if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_NOREPLACE) != 0)
      throw Error("cannot move the trace into " + target_.string() + ": " + errno_text(errno));
  } else if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) !=
             0) {
    const int err = errno;
    if (err != EINVAL && err != ENOSYS)
      throw Error("cannot replace the trace in " + target_.string() + ": " + errno_text(err));
    // A file system without atomic exchange: move the old trace aside first. A crash between
    // the two renames leaves the old trace under a temporary name, which the next run removes.
    std::string aside =
        (parent / ("." + target_.filename().string() + ".trace-tmp-old-XXXXXX")).string();
    if (!::mkdtemp(aside.data()) || ::rename(target_.c_str(), aside.c_str()) != 0 ||
        ::rename(staging_.c_str(), target_.c_str()) != 0)
      throw Error("cannot replace the trace in " + target_.string() + ": " + errno_text(errno));
    staging_ = aside;
  }
  committed_ = true;
  sync_directory(parent);
  // After an exchange the staging path holds the earlier trace.
  if (replace) fs::remove_all(staging_, ec);
}

}  // namespace apr::trace
