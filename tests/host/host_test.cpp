// SPDX-License-Identifier: MIT
// The plugin host against the bad-plugin corpus (plugins built broken on purpose, see
// CMakeLists.txt): each must be refused with its one-line reason, judged in a child process, while
// a good plugin in the search path still loads, alone, into this process and computes.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "common/error.hpp"
#include "host/backend.hpp"
#include "host/plugin_host.hpp"
#include "host/plugin_probe.hpp"
#include "host/probe_report.hpp"
#include "host/subprocess.hpp"
#include "model/model_config.hpp"
#include "runtime/session.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

fs::path temp_dir(const std::string& what) {
  std::random_device rd;
  fs::path dir = fs::temp_directory_path() / ("apr-host-test-" + what + "-" + std::to_string(rd()));
  fs::create_directories(dir);
  return dir;
}

// Directories for one test: the real cpu plugin alone, a copy of the corpus, and a cache.
struct Dirs {
  fs::path root = fs::weakly_canonical(temp_dir("dirs"));
  fs::path real = root / "real";
  fs::path corpus = root / "corpus";
  fs::path cache = root / "cache";
  Dirs() {
    fs::create_directories(real);
    fs::create_directories(corpus);
    fs::copy_file(CPU_PLUGIN_PATH, real / "apr-plugin-cpu.so");
    for (const auto& e : fs::directory_iterator(TEST_BAD_PLUGIN_DIR)) {
      // Without a memory limit (sanitizer builds, see probe_memory_limit_enforced) the flood
      // plugin's 64 GiB of allocations succeed or time out depending on the machine's load.
      if (!apr::host::probe_memory_limit_enforced() &&
          e.path().filename() == "apr-plugin-bad-flood-memory.so")
        continue;
      fs::copy_file(e.path(), corpus / e.path().filename());
    }
    std::ofstream(corpus / "libunrelated.so") << "ignored: not named like a plugin\n";
  }
  ~Dirs() { fs::remove_all(root); }
};

constexpr auto kTimeout = std::chrono::seconds(2);
constexpr uint64_t kMemory = uint64_t{1} << 30;

apr::host::SearchOptions options(std::vector<fs::path> dirs, const fs::path& cache) {
  apr::host::SearchOptions o;
  o.plugin_dirs = std::move(dirs);
  o.use_environment = false;
  o.use_install_dir = false;
  o.use_executable_dir = false;
  o.probe_helper = PROBE_HELPER;
  o.probe_timeout = kTimeout;
  o.probe_memory_bytes = kMemory;
  o.cache_dir = cache;
  return o;
}

std::string reason_for(const apr::host::PluginHost& h, const std::string& file) {
  for (const auto& r : h.refusals())
    if (r.path.filename() == file) return r.reason;
  return "<not refused>";
}

// The corpus and the reason each file must be refused with (a fragment of the one line).
const std::map<std::string, std::string>& expected_reasons() {
  static const std::map<std::string, std::string> m = {
      {"garbage", "cannot load: "},
      {"no-entry", "no entry symbol 'apr_plugin_entry' (not an apr plugin)"},
      {"null-table", "entry point returned no function table for ABI 1."},
      {"major-mismatch", "ABI major version 2, this host speaks 1"},
      {"struct-too-small", "ABI 1.0 needs"},
      {"null-member", "function table member 'matmul' is NULL"},
      {"bad-name", "backend name 'Bad Name!' is not 1-64 characters of [a-z0-9_-]"},
      {"unterminated-name", "backend name is not a NUL-terminated string of at most 64 bytes"},
      {"unterminated-description",
       "description is not a NUL-terminated string of at most 256 bytes"},
      {"aliases-without-null", "alias list has no NULL terminator within 16 entries"},
      {"init-error", "init failed: license server unreachable"},
      {"probe-unusable", "not usable on this machine: needs a flux capacitor"},
      {"unterminated-reason", "probe reason is not NUL-terminated within its 256 bytes"},
      {"probe-overrun", "probe wrote past the end of apr_probe_result"},
      {"huge-device-count",
       "device_count returned 4294967295, more than the 256 devices a host accepts"},
      {"no-devices", "plugin reports no devices"},
      {"unterminated-device-name",
       "device_info(0) name is not NUL-terminated within its 128 bytes"},
      {"crash-constructor", "crashed with SIGSEGV during loading (library constructors)"},
      {"abort-constructor", "crashed with SIGABRT during loading (library constructors)"},
      {"crash-entry", "crashed with SIGSEGV during the entry point"},
      {"crash-probe", "crashed with SIGSEGV during probe"},
      {"abort-probe", "crashed with SIGABRT during probe"},
      {"crash-init", "crashed with SIGSEGV during init"},
      {"crash-shutdown", "crashed with SIGSEGV during shutdown"},
      {"hang-probe", "probe took longer than 2 s (killed)"},
      {"exit-probe", "called exit(0) during probe (a plugin must never end the process)"},
      {"exit-init", "called exit(3) during init"},
  };
  static const std::map<std::string, std::string> with_flood = [] {
    auto all = m;
    all["flood-memory"] =
        "crashed with SIGABRT during probe after reaching its memory limit (1024 MiB)";
    return all;
  }();
  // Without a memory limit the flood plugin is left out of the corpus (see Dirs).
  return apr::host::probe_memory_limit_enforced() ? with_flood : m;
}

// Well-formed plugins in a search path of the real cpu plugin and the corpus: cpu and the ABI 1.0
// plugin.
const size_t kUsable = 2;

// The plugin files of the apr family mapped into this process.
std::vector<std::string> mapped_plugins() {
  std::ifstream maps("/proc/self/maps");
  std::vector<std::string> out;
  for (std::string line; std::getline(maps, line);) {
    const auto at = line.find("apr-plugin-");
    if (at == std::string::npos) continue;
    const std::string name = fs::path(line.substr(line.find('/'))).filename().string();
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

}  // namespace

TEST_CASE("every bad plugin is refused with its one-line reason; the good ones still work") {
  REQUIRE(mapped_plugins().empty());
  Dirs d;
  apr::host::PluginHost host(options({d.real, d.corpus}, d.cache));

  REQUIRE(expected_reasons().size() >= 15);
  for (const auto& [defect, fragment] : expected_reasons()) {
    INFO("apr-plugin-bad-" << defect << ".so");
    const std::string reason = reason_for(host, "apr-plugin-bad-" + defect + ".so");
    CHECK_THAT(reason, Contains(fragment));
    CHECK(reason.find('\n') == std::string::npos);
  }
  CHECK(host.refusals().size() == expected_reasons().size());
  CHECK(reason_for(host, "libunrelated.so") == "<not refused>");  // never even tried

  // The well-formed ones: cpu, and a plugin of ABI 1.0 with minor version 0 negotiated. The fake
  // "cpu" comes after the real one in the search path, so it is shadowed.
  REQUIRE(host.plugins().size() == kUsable);
  REQUIRE(host.shadowed().size() == 1);
  CHECK(host.shadowed()[0].path.filename() == "apr-plugin-bad-shadow-cpu.so");
  CHECK(host.shadowed()[0].name == "cpu");
  CHECK(host.shadowed()[0].by == d.real / "apr-plugin-cpu.so");

  // Probing loaded nothing into this process; selecting loads exactly the selected plugin.
  CHECK(mapped_plugins().empty());
  for (const auto& p : host.plugins()) CHECK_FALSE(p->loaded());
  apr::host::Plugin& cpu = host.select("cpu");
  CHECK(cpu.loaded());
  CHECK(cpu.path() == d.real / "apr-plugin-cpu.so");
  CHECK(cpu.abi_minor() == APR_ABI_MINOR);
  CHECK(mapped_plugins() == std::vector<std::string>{"apr-plugin-cpu.so"});
  CHECK(&host.select("auto") == &cpu);  // the highest probe score
  CHECK(host.select("bad-abi-minor-0").abi_minor() == 0);
  CHECK_THROWS_AS(host.select("cuda-that-is-not-here"), apr::Error);
  try {
    host.select("nope");
  } catch (const apr::Error& e) {
    CHECK_THAT(std::string(e.what()), Contains("available: ") && Contains("cpu"));
  }

  // "Still runs": a real kernel on the good plugin.
  const auto opened = apr::open_device(cpu, 0, 1);
  apr::Device& device = *opened;
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.5f}, b = {0.25f, 4.0f, -1.0f, 2.0f};
  apr::Buffer ba = device.alloc(16), bb = device.alloc(16);
  device.write(ba, 0, a.data(), 16);
  device.write(bb, 0, b.data(), 16);
  auto args = apr::abi_struct<apr_add_args>();
  args.a = ba.get();
  args.b = bb.get();
  args.out = ba.get();
  args.n = 4;
  device.add(args);
  std::vector<float> out(4);
  device.read(ba, 0, out.data(), 16);
  for (int i = 0; i < 4; ++i) CHECK(out[i] == a[i] + b[i]);
  CHECK_THROWS_AS(apr::open_device(cpu, 7, 1), apr::Error);  // no such device index
}

TEST_CASE("probe results are cached per file and re-probed when the file changes") {
  Dirs d;
  const auto o = options({d.real, d.corpus}, d.cache);
  const size_t n_files = expected_reasons().size() + kUsable + 1;  // + shadow-cpu
  std::vector<std::string> first;
  {
    apr::host::PluginHost host(o);
    CHECK(host.probed_now() == n_files);
    for (const auto& r : host.refusals()) first.push_back(r.reason);
  }
  REQUIRE(fs::exists(d.cache / "plugin-probes.json"));
  {
    apr::host::PluginHost host(o);  // everything from the cache, with the same answers
    CHECK(host.probed_now() == 0);
    std::vector<std::string> again;
    for (const auto& r : host.refusals()) again.push_back(r.reason);
    CHECK(again == first);
    CHECK(host.plugins().size() == kUsable);
    CHECK(host.shadowed().size() == 1);
    CHECK(host.select("cpu").devices().size() == 1);
  }
  // A changed file (new modification time) is probed again, alone.
  const fs::path touched = d.corpus / "apr-plugin-bad-init-error.so";
  fs::last_write_time(touched, fs::last_write_time(touched) + std::chrono::seconds(5));
  {
    apr::host::PluginHost host(o);
    CHECK(host.probed_now() == 1);
  }
  // A time-out may have been a busy machine: trusted for 10 minutes only. Backdating every entry
  // re-probes the hanging plugin alone.
  {
    std::ifstream in(d.cache / "plugin-probes.json");
    std::stringstream text;
    text << in.rdbuf();
    const std::string backdated =
        std::regex_replace(text.str(), std::regex("\"stored_at\": *[0-9]+"), "\"stored_at\": 0");
    REQUIRE(backdated != text.str());
    std::ofstream(d.cache / "plugin-probes.json") << backdated;
    apr::host::PluginHost host(o);
    CHECK(host.probed_now() == 1);
    CHECK_THAT(reason_for(host, "apr-plugin-bad-hang-probe.so"), Contains("took longer than"));
  }
  auto refresh = o;
  refresh.refresh_cache = true;
  CHECK(apr::host::PluginHost(refresh).probed_now() == n_files);
  // A cache file that is not JSON, or has been edited to hold absurd values, is ignored.
  std::ofstream(d.cache / "plugin-probes.json") << "{\"format\": 1, \"entries\": [1,2";
  CHECK(apr::host::PluginHost(o).probed_now() == n_files);
  // A cache directory that cannot be written: no cache, no error.
  auto unwritable = o;
  unwritable.cache_dir = "/proc/apr-no-such-dir";
  CHECK(apr::host::PluginHost(unwritable).plugins().size() == kUsable);
}

TEST_CASE("the first plugin of a name in the search path wins; the later one is shadowed") {
  Dirs d;
  const fs::path fake_dir = d.root / "fake";
  fs::create_directories(fake_dir);
  fs::copy_file(d.corpus / "apr-plugin-bad-shadow-cpu.so", fake_dir / "apr-plugin-cpu.so");
  apr::host::PluginHost host(options({fake_dir, d.real}, d.cache));
  REQUIRE(host.plugins().size() == 1);
  CHECK(host.plugins()[0]->path() == fake_dir / "apr-plugin-cpu.so");
  REQUIRE(host.shadowed().size() == 1);
  CHECK(host.shadowed()[0].path == d.real / "apr-plugin-cpu.so");
  CHECK(host.shadowed()[0].by == fake_dir / "apr-plugin-cpu.so");
  CHECK(host.select("cpu").description() == "defective plugin for host tests");
}

TEST_CASE("auto judges a plugin's weight types by its probe answer, without loading it") {
  Dirs d;
  fs::copy_file(EXAMPLE_PLUGIN_PATH, d.real / "apr-plugin-example.so");
  apr::host::PluginHost host(options({d.real}, d.cache));
  REQUIRE(host.plugins().size() == 2);
  const apr::host::Plugin* example = nullptr;
  for (const auto& p : host.plugins())
    if (p->name() == "example") example = p.get();
  REQUIRE(example);
  REQUIRE(example->info().caps_probed);
  REQUIRE(example->devices().at(0).has_caps);
  // The example plugin takes F32 and F16 only.
  CHECK(apr::unsupported_weights(*example, 0, {{APR_TYPE_F32, "a"}}).empty());
  CHECK_THAT(apr::unsupported_weights(*example, 0, {{APR_TYPE_Q8_0, "blk.0.w"}}),
             Contains("cannot load weight type Q8_0 (tensor 'blk.0.w')"));
  CHECK_FALSE(example->loaded());
  CHECK(mapped_plugins().empty());
  // Loaded, it gives the same answer itself.
  const uint64_t probed = example->devices().at(0).caps.weight_types;
  CHECK(probed == ((uint64_t{1} << APR_TYPE_F32) | (uint64_t{1} << APR_TYPE_F16)));
  CHECK(host.select("example").loaded());
  CHECK(example->devices().at(0).caps.weight_types == probed);
}

TEST_CASE("without the probe helper every plugin is refused, saying why") {
  Dirs d;
  auto o = options({d.real}, d.cache);
  o.probe_helper = d.root / "no-such-helper";
  apr::host::PluginHost host(o);
  CHECK(host.plugins().empty());
  CHECK_THAT(reason_for(host, "apr-plugin-cpu.so"), Contains("cannot probe: cannot execute"));
}

TEST_CASE("APR_PLUGIN_PATH is searched after --plugin-dir, without duplicates") {
  Dirs d;
  ::setenv("APR_PLUGIN_PATH", (d.real.string() + "::" + d.real.string()).c_str(), 1);
  auto o = options({d.real}, d.cache);
  o.use_environment = true;
  apr::host::PluginHost host(o);
  ::unsetenv("APR_PLUGIN_PATH");
  CHECK(host.search_path().size() == 1);
  CHECK(host.plugins().size() == 1);
}

TEST_CASE("load_plugin loads one file in this process with the same checks") {
  CHECK_THROWS_WITH(
      apr::host::load_plugin(fs::path(TEST_BAD_PLUGIN_DIR) / "apr-plugin-bad-probe-unusable.so"),
      Contains("needs a flux capacitor"));
  CHECK_THROWS_WITH(
      apr::host::load_plugin(fs::path(TEST_BAD_PLUGIN_DIR) / "apr-plugin-bad-huge-device-count.so"),
      Contains("device_count returned 4294967295"));
  CHECK_THROWS_WITH(apr::host::load_plugin("/nonexistent/apr-plugin-x.so"),
                    Contains("cannot load"));
  auto p = apr::host::load_plugin(CPU_PLUGIN_PATH);
  CHECK(p->loaded());
  CHECK(p->name() == "cpu");
}

TEST_CASE("run_child reports output, exit status, signals and time-outs") {
  using apr::host::run_child;
  apr::host::ChildLimits l;
  l.idle_timeout = std::chrono::milliseconds(500);
  auto r = run_child({"/bin/sh", "-c", "echo report >&3; echo noise; exit 4"}, l);
  CHECK(r.started);
  CHECK(r.report == "report\n");
  CHECK(r.stderr_tail == "noise\n");
  CHECK(r.exit_code == 4);
  CHECK(r.signal == 0);
  CHECK_FALSE(r.timed_out);

  r = run_child({"/bin/sh", "-c", "kill -SEGV $$"}, l);
  CHECK(r.signal == SIGSEGV);
  CHECK(apr::host::signal_name(r.signal) == "SIGSEGV");

  // Progress on the report channel restarts the clock; silence ends the child.
  r = run_child({"/bin/sh", "-c", "for i in 1 2 3 4; do echo $i >&3; sleep 0.2; done"}, l);
  CHECK_FALSE(r.timed_out);
  CHECK(r.report == "1\n2\n3\n4\n");
  r = run_child({"/bin/sh", "-c", "echo started >&3; exec sleep 30"}, l);
  CHECK(r.timed_out);
  CHECK(r.report == "started\n");

  // A child that leaves a grandchild holding the pipes does not keep the caller waiting.
  r = run_child({"/bin/sh", "-c", "sleep 30 & exit 0"}, l);
  CHECK(r.exit_code == 0);

  // Output beyond the bound is cut, not accumulated.
  l.max_report_bytes = 100;
  r = run_child({"/bin/sh", "-c", "head -c 100000 /dev/zero >&3"}, l);
  CHECK(r.report.size() == 100);
  CHECK(r.report_truncated);

  r = run_child({"/nonexistent/program"}, l);
  CHECK_FALSE(r.started);
  CHECK_THAT(r.start_error, Contains("cannot execute /nonexistent/program"));
}

TEST_CASE("a probe report is re-checked field by field when read") {
  using apr::host::report_from_json;
  const std::string good =
      R"({"usable":true,"phase":"done","reason":"","name":"cpu","version":"1","description":"d",)"
      R"("aliases":["x"],"abi_minor":1,"score":10,"probe":"ok","devices":[{"index":0,"kind":0,)"
      R"("memory_bytes":0,"name":"n","description":""}]})";
  const auto r = report_from_json(good);
  CHECK(r.usable);
  CHECK(r.info.name == "cpu");
  CHECK(r.info.devices.size() == 1);
  CHECK(apr::host::report_from_json(apr::host::to_json(r)).info.aliases == r.info.aliases);

  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  CHECK_THROWS_WITH(report_from_json("not json"), Contains("malformed probe report"));
  CHECK_THROWS_WITH(report_from_json(with(R"("name":"cpu")", R"("name":"CPU!")")),
                    Contains("'name' is not a backend name"));
  CHECK_THROWS_WITH(report_from_json(with(R"("abi_minor":1)", R"("abi_minor":99)")),
                    Contains("'abi_minor' is 99"));
  CHECK_THROWS_WITH(report_from_json(with(R"("probe":"ok")", R"("probe":"a\nb")")),
                    Contains("control character"));
  CHECK_THROWS_WITH(
      report_from_json(with(R"("version":"1")", "\"version\":\"" + std::string(65, 'v') + "\"")),
      Contains("more than the 64 allowed"));
  CHECK_THROWS_WITH(report_from_json(with(R"("devices":[)", R"("devices":[],"x":[)")),
                    Contains("1 to 256 devices"));
  CHECK_THROWS_WITH(report_from_json(with(R"("index":0)", R"("index":3)")),
                    Contains("device indices"));
  CHECK_THROWS_WITH(report_from_json(R"({"usable":false,"phase":"probe","reason":""})"),
                    Contains("without a reason"));
}

namespace {

// The configuration of each newer family as far as its ABI 1.3 needs go (what
// ModelConfig::from_gguf sets for it), for the needs the session asks of a backend.
apr::ModelConfig family_config(const std::string& arch) {
  apr::ModelConfig c;
  c.arch_name = arch;
  c.has_qk_norm = arch == "qwen3" || arch == "gemma3";
  if (arch == "gemma2" || arch == "gemma3") {
    c.has_post_norms = true;
    c.ffn_activation = APR_ACT_GELU_TANH;
    c.embd_scale = 48.0f;
    c.sliding_window = 4096;
    c.layer_is_swa = {true, false};
  }
  if (arch == "gemma2") {
    c.attn_softcap = 50.0f;
    c.final_softcap = 30.0f;
  }
  return c;
}

std::vector<apr::OperationNeed> needs_of(const std::string& arch) {
  return apr::operation_needs(family_config(arch));
}

}  // namespace

TEST_CASE("a newer family's model is refused by a plugin older than ABI 1.3, in one line") {
  CHECK(needs_of("llama").empty());
  CHECK(needs_of("phi3").empty());  // fused matrices and LongRoPE are the host's business
  const auto v10 =
      apr::host::load_plugin(fs::path(TEST_BAD_PLUGIN_DIR) / "apr-plugin-bad-abi-minor-0.so");
  REQUIRE(v10->abi_minor() == 0);
  CHECK(apr::unsupported_operations(*v10, 0, needs_of("qwen3"), "qwen3") ==
        "backend 'bad-abi-minor-0' speaks plugin ABI 1.0, but qwen3 models need ABI 1.3 for "
        "per-head RMSNorm of Q and K");
  // The example plugin built against the frozen 1.2 header: it has device_caps, but the version
  // decides, and every operation the family needs is named.
  const auto v12 = apr::host::load_plugin(EXAMPLE_V1_2_PLUGIN_PATH);
  REQUIRE(v12->abi_minor() == 2);
  CHECK(apr::unsupported_operations(*v12, 0, needs_of("gemma2"), "gemma2") ==
        "backend 'example-v1-2' speaks plugin ABI 1.2, but gemma2 models need ABI 1.3 for "
        "sliding-window attention, soft-capped attention scores, the GELU-gated feed-forward, "
        "the unary kernel (logit soft-cap)");
  // A model that needs nothing of 1.3 runs on it.
  CHECK(apr::unsupported_operations(*v12, 0, needs_of("llama"), "llama").empty());
  CHECK(apr::unsupported_needs(*v12, 0, {{{APR_TYPE_F32, "token_embd.weight"}}, {}, "llama"})
            .empty());
}

TEST_CASE("a plugin of ABI 1.3 without an operation's feature bit is refused, naming it") {
  // The example plugin speaks 1.3 but claims none of its operations and has no unary kernel (it
  // stays that way: it shows the refusal).
  const auto example = apr::host::load_plugin(EXAMPLE_PLUGIN_PATH);
  REQUIRE(example->abi_minor() == 3);
  const apr_plugin_api& api = example->api();
  REQUIRE(APR_STRUCT_HAS(&api, apr_plugin_api, unary));
  CHECK(api.unary == nullptr);
  CHECK(apr::unsupported_operations(*example, 0, needs_of("gemma3"), "gemma3") ==
        "backend 'example' (device 0) lacks per-head RMSNorm of Q and K, sliding-window "
        "attention, the GELU-gated feed-forward, the unary kernel (embedding scale), which gemma3 "
        "models need");
  CHECK(apr::unsupported_operations(*example, 0, needs_of("phi3"), "phi3").empty());

  // A 1.3 plugin with every operation but the attention soft-cap: only gemma2 is refused.
  const auto partial = apr::host::load_plugin(PARTIAL_1_3_PLUGIN_PATH);
  REQUIRE(partial->abi_minor() == 3);
  CHECK(apr::unsupported_operations(*partial, 0, needs_of("qwen3"), "qwen3").empty());
  CHECK(apr::unsupported_operations(*partial, 0, needs_of("gemma3"), "gemma3").empty());
  const std::string why = apr::unsupported_operations(*partial, 0, needs_of("gemma2"), "gemma2");
  CHECK(why ==
        "backend 'partial-1-3' (device 0) lacks soft-capped attention scores, which gemma2 "
        "models need");
  CHECK(why.find('\n') == std::string::npos);
  // The operations are judged before the weight types; either refusal is one line.
  CHECK(apr::unsupported_needs(
            *partial, 0,
            {{{APR_TYPE_Q8_0, "blk.0.attn_q.weight"}}, needs_of("gemma2"), "gemma2"}) == why);
  CHECK_THAT(
      apr::unsupported_needs(
          *partial, 0, {{{APR_TYPE_Q8_0, "blk.0.attn_q.weight"}}, needs_of("gemma3"), "gemma3"}),
      Contains("cannot load weight type Q8_0 (tensor 'blk.0.attn_q.weight')"));

  // The cpu plugin has every operation of 1.3.
  const auto cpu = apr::host::load_plugin(CPU_PLUGIN_PATH);
  for (const char* arch : {"qwen3", "gemma2", "gemma3", "phi3"}) {
    INFO(arch);
    CHECK(apr::unsupported_operations(*cpu, 0, needs_of(arch), arch).empty());
  }
}

TEST_CASE("auto passes over a backend that lacks an operation the model's family needs") {
  const fs::path root = fs::weakly_canonical(temp_dir("features"));
  fs::copy_file(EXAMPLE_PLUGIN_PATH, root / "apr-plugin-example.so");
  fs::copy_file(PARTIAL_1_3_PLUGIN_PATH, root / "apr-plugin-partial-1-3.so");
  {
    apr::host::PluginHost host(options({root}, root / "cache"));
    REQUIRE(host.plugins().size() == 2);
    const apr::BackendNeeds gemma3{{}, needs_of("gemma3"), "gemma3"};
    CHECK(apr::select_backend(host, "auto", 0, gemma3).name() == "partial-1-3");
    try {
      apr::select_backend(host, "auto", 0, {{}, needs_of("gemma2"), "gemma2"});
      FAIL("gemma2 found a backend");
    } catch (const apr::Error& e) {
      const std::string what = e.what();
      CHECK_THAT(what, Catch::StartsWith("no backend can run this model: "));
      CHECK_THAT(what, Contains("backend 'partial-1-3' (device 0) lacks soft-capped attention "
                                "scores, which gemma2 models need"));
      CHECK_THAT(what, Contains("backend 'example' (device 0) lacks sliding-window attention"));
      CHECK(what.find('\n') == std::string::npos);
    }
    // Named explicitly, a backend is selected; the session refuses the model (unsupported_needs).
    CHECK(apr::select_backend(host, "example", 0, {{}, needs_of("gemma2"), "gemma2"}).name() ==
          "example");
  }
  fs::remove_all(root);
}
