// The plugin host against plugins built broken on purpose: each must be refused with its reason
// while a good plugin in the same directory still loads and computes.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.hpp"
#include "host/backend.hpp"
#include "host/plugin_host.hpp"

namespace fs = std::filesystem;

namespace {

fs::path make_plugin_dir() {
  std::random_device rd;
  fs::path dir = fs::temp_directory_path() / ("apr-host-test-" + std::to_string(rd()));
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(TEST_BAD_PLUGIN_DIR))
    fs::copy_file(e.path(), dir / e.path().filename());
  fs::copy_file(CPU_PLUGIN_PATH, dir / "apr-plugin-cpu.so");
  fs::copy_file(CPU_PLUGIN_PATH, dir / "apr-plugin-cpu-copy.so");
  std::ofstream(dir / "apr-plugin-notalib.so") << "this is not an ELF file\n";
  std::ofstream(dir / "libunrelated.so") << "ignored: not named like a plugin\n";
  return dir;
}

apr::host::SearchOptions only(const fs::path& dir) {
  apr::host::SearchOptions o;
  o.plugin_dirs = {dir};
  o.use_environment = false;
  o.use_install_dir = false;
  o.use_executable_dir = false;
  return o;
}

std::string reason_for(const apr::host::PluginHost& h, const std::string& file) {
  for (const auto& r : h.refusals())
    if (r.path.filename() == file) return r.reason;
  return "<not refused>";
}

}  // namespace

TEST_CASE("every defective plugin is refused with its reason; the good one still works") {
  const fs::path dir = make_plugin_dir();
  apr::host::PluginHost host(only(dir));

  using Catch::Matchers::Contains;
  CHECK_THAT(reason_for(host, "apr-plugin-notalib.so"), Contains("cannot load"));
  CHECK_THAT(reason_for(host, "apr-plugin-bad-no-entry.so"), Contains("no entry symbol"));
  CHECK_THAT(reason_for(host, "apr-plugin-bad-major-mismatch.so"),
             Contains("ABI major version 2, this host speaks 1"));
  CHECK_THAT(reason_for(host, "apr-plugin-bad-struct-too-small.so"),
             Contains("function table is") && Contains("ABI 1.0 needs"));
  CHECK_THAT(reason_for(host, "apr-plugin-bad-init-error.so"),
             Contains("init failed: license server unreachable"));
  CHECK_THAT(reason_for(host, "apr-plugin-bad-probe-unusable.so"),
             Contains("not usable on this machine: needs a flux capacitor"));
  CHECK_THAT(reason_for(host, "apr-plugin-bad-null-member.so"),
             Contains("member 'matmul' is NULL"));
  // Two files providing "cpu": the first in directory order wins, the other is refused.
  CHECK_THAT(reason_for(host, "apr-plugin-cpu-copy.so") + reason_for(host, "apr-plugin-cpu.so"),
             Contains("backend 'cpu' is already provided by") && Contains("<not refused>"));
  CHECK(reason_for(host, "libunrelated.so") == "<not refused>");  // never even tried
  CHECK(host.refusals().size() == 8);

  // A well-formed plugin of ABI 1.0 loads beside them, with minor version 0 negotiated.
  REQUIRE(host.plugins().size() == 2);
  CHECK(host.select("bad-abi-minor-0").abi_minor() == 0);
  apr::host::Plugin& cpu = host.select("cpu");
  CHECK(cpu.abi_minor() == APR_ABI_MINOR);
  CHECK(&host.select("auto") == &cpu);
  CHECK_THROWS_AS(host.select("cuda-that-is-not-here"), apr::Error);
  try {
    host.select("nope");
  } catch (const apr::Error& e) {
    CHECK_THAT(std::string(e.what()), Contains("available: ") && Contains("cpu"));
  }

  // "Still runs": a real kernel on the good plugin.
  apr::Device device(cpu, 0, 1);
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
  CHECK_THROWS_AS(apr::Device(cpu, 7, 1), apr::Error);  // no such device index

  fs::remove_all(dir);
}

TEST_CASE("APR_PLUGIN_PATH is searched after --plugin-dir, without duplicates") {
  const fs::path dir = make_plugin_dir();
  ::setenv("APR_PLUGIN_PATH", (dir.string() + "::" + dir.string()).c_str(), 1);
  apr::host::SearchOptions o;
  o.plugin_dirs = {dir};
  o.use_install_dir = false;
  o.use_executable_dir = false;
  apr::host::PluginHost host(o);
  ::unsetenv("APR_PLUGIN_PATH");
  CHECK(host.search_path().size() == 1);
  CHECK(host.plugins().size() == 2);
  fs::remove_all(dir);
}

TEST_CASE("a single plugin file is refused with the same reasons by load_plugin") {
  CHECK_THROWS_WITH(
      apr::host::load_plugin(fs::path(TEST_BAD_PLUGIN_DIR) / "apr-plugin-bad-probe-unusable.so"),
      Catch::Contains("needs a flux capacitor"));
  CHECK_THROWS_WITH(apr::host::load_plugin("/nonexistent/apr-plugin-x.so"),
                    Catch::Contains("cannot load"));
}
