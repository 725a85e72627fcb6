// SPDX-License-Identifier: MIT
#include "host/plugin_host.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/dll/runtime_symbol_info.hpp>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "common/error.hpp"
#include "host/backend_order.hpp"
#include "host/plugin_loader.hpp"
#include "host/plugin_probe.hpp"
#include "host/probe_cache.hpp"

#ifndef APR_INSTALLED_PLUGIN_DIR
#define APR_INSTALLED_PLUGIN_DIR "/usr/local/lib/apr/plugins"
#endif
#ifndef APR_PLUGIN_SUBDIR
#define APR_PLUGIN_SUBDIR "lib/apr/plugins"
#endif

namespace fs = std::filesystem;

namespace apr::host {
namespace {

constexpr std::string_view kPluginPrefix = "apr-plugin-";
constexpr unsigned kMaxParallelProbes = 8;  // children mostly wait on drivers, not on CPU

std::vector<fs::path> split_path_list(const char* value) {
  std::vector<fs::path> out;
  if (!value) return out;
  std::stringstream in(value);
  std::string item;
  while (std::getline(in, item, ':'))
    if (!item.empty()) out.emplace_back(item);
  return out;
}

// Runs the probe children, several at a time; results keep the order of `files`.
std::vector<ProbeReport> probe_all(const std::vector<fs::path>& files, const fs::path& helper,
                                   const ProbeLimits& limits) {
  std::vector<ProbeReport> reports(files.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next++) < files.size();)
      reports[i] = probe_out_of_process(files[i], helper, limits);
  };
  const size_t n_threads = std::min<size_t>(kMaxParallelProbes, files.size());
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  return reports;
}

}  // namespace

Plugin::Plugin(fs::path path, PluginInfo info) : path_(std::move(path)), info_(std::move(info)) {}

Plugin::Plugin(std::unique_ptr<LoadedLibrary> loaded, fs::path path)
    : path_(std::move(path)), info_(loaded->info()), loaded_(std::move(loaded)) {}

Plugin::~Plugin() = default;

const apr_plugin_api& Plugin::api() const {
  if (!loaded_) {
    spdlog::debug("loading plugin {} into this process", path_.string());
    std::unique_ptr<LoadedLibrary> lib;
    try {
      lib = LoadedLibrary::load(path_);
    } catch (const Error& e) {
      throw Error("cannot use plugin " + path_.string() + ": " + e.what());
    }
    if (lib->info().name != info_.name)
      throw Error("cannot use plugin " + path_.string() +
                  ": it changed since it was probed (now '" + lib->info().name + "', was '" +
                  info_.name + "')");
    info_ = lib->info();  // this process's own answers (devices, score) are the ones that count
    loaded_ = std::move(lib);
  }
  return loaded_->api();
}

bool Plugin::answers_to(std::string_view backend) const {
  if (backend == name()) return true;
  for (const auto& alias : aliases())
    if (alias == backend) return true;
  return false;
}

fs::path installed_plugin_dir() {
  return APR_INSTALLED_PLUGIN_DIR;
}

fs::path executable_dir() {
  boost::dll::fs::error_code ec;
  auto p = boost::dll::program_location(ec);
  if (ec) return {};
  return fs::path(p.string()).parent_path();
}

std::unique_ptr<Plugin> load_plugin(const fs::path& file) {
  auto lib = LoadedLibrary::load(file);
  return std::make_unique<Plugin>(std::move(lib), file);
}

PluginHost::PluginHost(SearchOptions options) {
  std::vector<fs::path> dirs = options.plugin_dirs;
  if (options.use_environment)
    for (auto& d : split_path_list(std::getenv("APR_PLUGIN_PATH"))) dirs.push_back(d);
  if (options.use_install_dir) dirs.push_back(installed_plugin_dir());
  if (options.use_executable_dir) {
    const fs::path exe = executable_dir();
    if (!exe.empty()) {
      dirs.push_back(exe.parent_path() / APR_PLUGIN_SUBDIR);  // build or install tree
      dirs.push_back(exe);
    }
  }
  for (auto& d : dirs) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(d, ec);
    if (ec) canonical = d;
    if (std::find(search_path_.begin(), search_path_.end(), canonical) == search_path_.end())
      search_path_.push_back(canonical);
  }

  const std::vector<fs::path> files = candidates();
  std::optional<ProbeCache> cache;
  if (options.use_cache) {
    cache.emplace(options.cache_dir);
    cache_file_ = cache->file();
  }
  std::vector<std::optional<ProbeReport>> reports(files.size());
  std::vector<fs::path> to_probe;
  for (size_t i = 0; i < files.size(); ++i) {
    std::error_code ec;
    if (!fs::is_regular_file(files[i], ec)) {
      ProbeReport r;
      r.reason = "not a regular file";
      reports[i] = r;
    } else if (cache && !options.refresh_cache) {
      reports[i] = cache->find(files[i]);
    }
    if (!reports[i]) to_probe.push_back(files[i]);
  }
  if (!to_probe.empty()) {
    const fs::path helper =
        options.probe_helper.empty() ? default_probe_helper() : options.probe_helper;
    const ProbeLimits limits{options.probe_timeout, options.probe_memory_bytes};
    std::vector<ProbeReport> fresh = probe_all(to_probe, helper, limits);
    probed_now_ = fresh.size();
    for (size_t i = 0, k = 0; i < files.size(); ++i) {
      if (reports[i]) continue;
      // A child that did not even start says nothing about the plugin: never cached.
      if (cache && fresh[k].reason.rfind("cannot probe:", 0) != 0) cache->store(files[i], fresh[k]);
      reports[i] = std::move(fresh[k++]);
    }
    if (cache) cache->save();
  }

  spdlog::debug("probed {} of {} plugin files in child processes, the rest from the cache {}",
                probed_now_, files.size(), cache ? cache->file().string() : "(none)");
  for (size_t i = 0; i < files.size(); ++i) {
    ProbeReport& r = *reports[i];
    if (!r.usable) {
      spdlog::debug("refused {}: {}", files[i].string(), r.reason);
      refusals_.push_back({files[i], r.reason});
      continue;
    }
    const Plugin* earlier = nullptr;
    for (const auto& p : plugins_)
      if (p->answers_to(r.info.name)) earlier = p.get();
    if (earlier) {
      spdlog::debug("{} ({}) is shadowed by {}", files[i].string(), r.info.name,
                    earlier->path().string());
      shadowed_.push_back({files[i], r.info.name, earlier->path()});
      continue;
    }
    spdlog::debug("found plugin {} at {}", r.info.name, files[i].string());
    plugins_.push_back(std::make_unique<Plugin>(files[i], std::move(r.info)));
  }
}

PluginHost::~PluginHost() = default;

std::vector<fs::path> PluginHost::candidates() const {
  std::vector<fs::path> all;
  for (const auto& dir : search_path_) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string fname = entry.path().filename().string();
      // Only files named like plugins are tried, so unrelated libraries cause no noise.
      if (fname.rfind(kPluginPrefix, 0) == 0 && entry.path().extension() == ".so")
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    all.insert(all.end(), files.begin(), files.end());
  }
  return all;
}

Plugin& PluginHost::select(std::string_view backend) const {
  Plugin* chosen = nullptr;
  if (backend == "auto") {
    // Probe scores rank real hardware above software fallbacks (a GPU plugin scores higher than
    // cpu, lavapipe lower), so the best usable backend is the highest score; the documented order
    // (kAutoBackendOrder) breaks ties.
    for (const auto& p : plugins_) {
      if (!chosen || p->score() > chosen->score() ||
          (p->score() == chosen->score() &&
           auto_backend_rank(p->name()) < auto_backend_rank(chosen->name())))
        chosen = p.get();
    }
  } else {
    for (const auto& p : plugins_)
      if (p->answers_to(backend)) {
        chosen = p.get();
        break;
      }
  }
  if (chosen) {
    // Not silent: a plugin earlier in the search path replacing another of the same name.
    for (const auto& s : shadowed_)
      if (s.by == chosen->path() && !chosen->loaded())
        spdlog::warn("backend '{}' is taken from {}, which shadows {}", chosen->name(),
                     chosen->path().string(), s.path.string());
    chosen->api();  // loads it into this process now, so a failure surfaces here
    return *chosen;
  }
  std::string available;
  for (const auto& p : plugins_)
    available += (available.empty() ? "" : ", ") + std::string(p->name());
  if (available.empty()) available = "none (run `apr plugins` to see why)";
  throw Error("backend '" + std::string(backend) + "' is not available; available: " + available);
}

}  // namespace apr::host
