// SPDX-License-Identifier: MIT
// apr plugins: what the host found, what it can offer, what is shadowed and why it refused the
// rest. Every file was judged by a probe child (or its cached answer); none is loaded here.
#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

#include "cli.hpp"

namespace apr::cli {
namespace {

constexpr const char* kUsage = R"(Usage: apr plugins [--json] [--rescan] [--plugin-dir DIR]...

Lists the backend plugins the host found usable (name, version, ABI version, devices), those
shadowed by an earlier plugin of the same name in the search path, and every file in the search
path that it refused, with the reason. Each file is probed in a child process; answers are
cached per file until it changes ($XDG_CACHE_HOME/apr, else ~/.cache/apr).)";

const char* kind_name(uint32_t kind) {
  switch (kind) {
    case APR_DEVICE_KIND_CPU:
      return "cpu";
    case APR_DEVICE_KIND_DISCRETE_GPU:
      return "discrete-gpu";
    case APR_DEVICE_KIND_INTEGRATED_GPU:
      return "integrated-gpu";
    case APR_DEVICE_KIND_VIRTUAL:
      return "virtual";
    default:
      return "other";
  }
}

}  // namespace

int cmd_plugins(Context& ctx, const std::vector<std::string>& args) {
  bool json = false, rescan = false;
  po::options_description desc("Options");
  desc.add_options()("json", po::bool_switch(&json), "print JSON")(
      "rescan", po::bool_switch(&rescan),
      "probe every plugin file anew instead of using cached answers (and cache the new ones)");
  po::variables_map vm;
  if (!parse_verb_args(args, desc, {}, kUsage, vm)) return kExitOk;

  std::unique_ptr<host::PluginHost> rescanned;
  if (rescan) {
    host::SearchOptions options;
    for (const auto& d : ctx.global.plugin_dirs) options.plugin_dirs.emplace_back(d);
    options.refresh_cache = true;
    rescanned = std::make_unique<host::PluginHost>(std::move(options));
  }
  const host::PluginHost& h = rescan ? *rescanned : ctx.plugins();
  if (json) {
    nlohmann::json j;
    j["search_path"] = nlohmann::json::array();
    for (const auto& d : h.search_path()) j["search_path"].push_back(d.string());
    j["plugins"] = nlohmann::json::array();
    for (const auto& p : h.plugins()) {
      nlohmann::json pj = {
          {"name", std::string(p->name())},
          {"version", std::string(p->version())},
          {"abi_version", std::to_string(APR_ABI_MAJOR) + "." + std::to_string(p->abi_minor())},
          {"aliases", p->aliases()},
          {"path", p->path().string()},
          {"score", p->score()},
          {"probe", p->probe_message()},
          {"devices", nlohmann::json::array()}};
      for (const auto& d : p->devices())
        pj["devices"].push_back({{"index", d.index},
                                 {"name", d.name},
                                 {"kind", kind_name(d.kind)},
                                 {"memory_bytes", d.memory_bytes},
                                 {"description", d.description}});
      j["plugins"].push_back(pj);
    }
    j["shadowed"] = nlohmann::json::array();
    for (const auto& s : h.shadowed())
      j["shadowed"].push_back(
          {{"path", s.path.string()}, {"name", s.name}, {"shadowed_by", s.by.string()}});
    j["refused"] = nlohmann::json::array();
    for (const auto& r : h.refusals())
      j["refused"].push_back({{"path", r.path.string()}, {"reason", r.reason}});
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return kExitOk;
  }

  std::cout << "Search path:\n";
  for (const auto& d : h.search_path()) std::cout << "  " << d.string() << "\n";
  std::cout << "\nUsable plugins:\n";
  if (h.plugins().empty()) std::cout << "  (none)\n";
  for (const auto& p : h.plugins()) {
    std::cout << "  " << p->name() << " " << p->version() << "  ABI " << APR_ABI_MAJOR << "."
              << p->abi_minor() << "  score " << p->score() << "  " << p->path().string() << "\n";
    if (!p->aliases().empty()) {
      std::cout << "    aliases:";
      for (const auto& a : p->aliases()) std::cout << " " << a;
      std::cout << "\n";
    }
    if (!p->probe_message().empty()) std::cout << "    probe: " << p->probe_message() << "\n";
    for (const auto& d : p->devices()) {
      std::cout << "    device " << d.index << ": " << d.name << " (" << kind_name(d.kind);
      if (d.memory_bytes) std::cout << ", " << (d.memory_bytes >> 20) << " MiB";
      std::cout << ")";
      if (!d.description.empty()) std::cout << " - " << d.description;
      std::cout << "\n";
    }
  }
  if (!h.shadowed().empty()) {
    std::cout << "\nShadowed (an earlier plugin in the search path has the name):\n";
    for (const auto& s : h.shadowed())
      std::cout << "  " << s.path.string() << ": " << s.name << ", shadowed by " << s.by.string()
                << "\n";
  }
  std::cout << "\nRefused files:\n";
  if (h.refusals().empty()) std::cout << "  (none)\n";
  for (const auto& r : h.refusals())
    std::cout << "  " << r.path.string() << ": " << r.reason << "\n";
  if (!h.cache_file().empty() &&
      h.probed_now() < h.plugins().size() + h.shadowed().size() + h.refusals().size())
    std::cout << "\nSome answers came from the probe cache " << h.cache_file().string()
              << "; 'apr plugins --rescan' probes every file anew.\n";
  return kExitOk;
}

}  // namespace apr::cli
