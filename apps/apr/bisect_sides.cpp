// SPDX-License-Identifier: MIT
#include "bisect_sides.hpp"

#include <limits>

namespace apr::cli {

namespace {

std::string opt(const BisectSide& s, const char* base) {
  return std::string(base) + "-" + s.name;
}

}  // namespace

std::string BisectSide::describe() const {
  std::string s =
      plugin ? std::string(plugin->name()) + " " + std::string(plugin->version()) : backend;
  std::vector<std::string> extra;
  if (ubatch) extra.push_back("ubatch " + std::to_string(ubatch));
  if (threads) extra.push_back("threads " + std::to_string(threads));
  if (device) extra.push_back("device " + std::to_string(device));
  if (plugin && !plugin_dirs.empty()) extra.push_back("plugin " + plugin->path().string());
  for (size_t i = 0; i < extra.size(); ++i) s += (i ? ", " : " (") + extra[i];
  return extra.empty() ? s : s + ")";
}

void add_side_options(po::options_description_easy_init& add, BisectSide& side) {
  const bool a = side.name == 'a';
  add(opt(side, "backend").c_str(), po::value(&side.backend),
      a ? "backend of side A (default: the global --backend)"
        : "backend of side B (default: side A's when another --*-b option is given)");
  add(opt(side, "plugin-dir").c_str(), po::value(&side.plugin_dirs)->composing(),
      a ? "search DIR first for side A's plugin (repeatable): compare two builds of a backend"
        : "search DIR first for side B's plugin (repeatable)");
  add(opt(side, "device").c_str(), po::value(&side.device),
      a ? "device of side A (default: the global --device)" : "device of side B");
  add(opt(side, "threads").c_str(), po::value(&side.threads),
      a ? "CPU threads of side A (default: the global --threads)" : "CPU threads of side B");
  add(opt(side, "ubatch").c_str(), po::value(&side.ubatch),
      a ? "side A evaluates the prompt in micro-batches of at most N tokens (default: --ubatch)"
        : "side B's micro-batch size");
}

void finish_side(BisectSide& side, const po::variables_map& vm, const GlobalOptions& global,
                 int64_t ubatch) {
  for (const char* base : {"plugin-dir", "device", "threads", "ubatch"})
    if (vm.count(opt(side, base))) side.any_option = true;
  if (!vm.count(opt(side, "device"))) side.device = global.device;
  if (!vm.count(opt(side, "threads"))) side.threads = global.threads;
  if (!vm.count(opt(side, "ubatch"))) side.ubatch = ubatch;
  in_range(side.device, "--" + opt(side, "device"), 0, std::numeric_limits<int32_t>::max());
  in_range(side.threads, "--" + opt(side, "threads"), 0, 1024);
  in_range(side.ubatch, "--" + opt(side, "ubatch"), 0, std::numeric_limits<int32_t>::max());
}

void select_side_plugin(Context& ctx, BisectSide& side, const BackendNeeds& needs) {
  const auto device = static_cast<uint32_t>(side.device);
  if (side.plugin_dirs.empty()) {
    side.plugin = &select_backend(ctx.plugins(), side.backend, device, needs);
    return;
  }
  host::SearchOptions options;
  for (const auto& d : side.plugin_dirs) options.plugin_dirs.emplace_back(d);
  for (const auto& d : ctx.global.plugin_dirs) options.plugin_dirs.emplace_back(d);
  side.own_host = std::make_unique<host::PluginHost>(std::move(options));
  side.plugin = &select_backend(*side.own_host, side.backend, device, needs);
}

}  // namespace apr::cli
