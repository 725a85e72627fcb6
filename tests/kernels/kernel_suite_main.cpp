// SPDX-License-Identifier: MIT
// The in-tree kernel suite: the conformance checks of `apr plugin-check` (core/conformance), run
// against APR_TEST_PLUGIN (default: the cpu plugin built alongside) on device APR_TEST_DEVICE.
//   apr_kernel_tests            every check but the [fault] ones
//   apr_kernel_tests "[fault]"  only the fault-injection checks (for the cpu-fault twin)
// Exit status: 0 all selected checks passed, 1 one failed, 77 (CTest's skip) none could run.
#include <cstdlib>
#include <iostream>
#include <string>

#include "runner.hpp"

int main(int argc, char** argv) {
  const char* plugin = std::getenv("APR_TEST_PLUGIN");
  const char* device = std::getenv("APR_TEST_DEVICE");
  const char* reference = std::getenv("APR_TEST_REFERENCE_PLUGIN");
  conformance::Config& c = conformance::config();
  c.plugin_path = plugin && *plugin ? plugin : APR_TEST_DEFAULT_PLUGIN;
  c.device = device && *device ? uint32_t(std::strtoul(device, nullptr, 10)) : 0;
  c.reference_plugin_path = reference && *reference ? reference : APR_TEST_DEFAULT_PLUGIN;

  conformance::RunOptions options;
  if (argc > 1) options.include_tag = argv[1];
  std::cout << "kernel suite: " << c.plugin_path << " (device " << c.device << ")\n";
  size_t passed = 0, failed = 0, skipped = 0;
  conformance::run_checks(options, [&](const conformance::CheckResult& r) {
    conformance::print_line(std::cout, r);
    std::cout.flush();
    (r.outcome == conformance::Outcome::Pass   ? passed
     : r.outcome == conformance::Outcome::Skip ? skipped
                                               : failed)++;
  });
  std::cout << "summary: " << passed << " passed, " << failed << " failed, " << skipped
            << " skipped\n";
  if (failed > 0) return 1;
  if (passed == 0 && skipped > 0) {
    std::cout << "SKIPPED: no check could run\n";
    return 77;
  }
  return 0;
}
