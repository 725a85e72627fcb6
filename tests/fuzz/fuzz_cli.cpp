// SPDX-License-Identifier: MIT
// The command line: the input is one argument per line, given to the real `apr` entry point
// (apps/apr/main.cpp compiled with `main` renamed to apr_cli_main), so the global options, verb
// dispatch, every verb's option parsing and numeric validation run exactly as in the binary.
//
// Containment: the process works in an empty scratch directory recreated for every input, stdin
// is /dev/null, and arguments containing '/' are refused, so a verb can neither read nor write
// anything outside the scratch directory (no model, no plugin directory, no device file exists
// there). A verb that crashes, hangs, leaks or calls exit() is a finding; any exit status is not.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "fuzz_support.hpp"

int apr_cli_main(int argc, char** argv);

namespace {

std::filesystem::path scratch_root;
// libFuzzer reads seed and corpus files by the (often relative) paths it was given while it runs
// inputs, so every input starts and ends in the directory the fuzzer was started in.
std::filesystem::path start_dir;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  scratch_root = apr::fuzz::scratch_path("cli");
  start_dir = std::filesystem::current_path();
  if (!std::freopen("/dev/null", "r", stdin)) std::abort();
  ::unsetenv("APR_PLUGIN_PATH");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kMaxArgs = 24;
  constexpr size_t kMaxArgLength = 128;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.find('/') != std::string_view::npos || input.find('\0') != std::string_view::npos)
    return -1;  // not added to the corpus
  std::vector<std::string> args{"apr"};
  for (size_t pos = 0; pos <= input.size();) {
    size_t end = input.find('\n', pos);
    if (end == std::string_view::npos) end = input.size();
    if (args.size() > kMaxArgs || end - pos > kMaxArgLength) return -1;
    args.emplace_back(input.substr(pos, end - pos));
    pos = end + 1;
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::error_code ec;
  std::filesystem::remove_all(scratch_root, ec);
  std::filesystem::create_directories(scratch_root);
  std::filesystem::current_path(scratch_root);
  spdlog::drop_all();  // main registers its logger by name on every call
  (void)apr_cli_main(static_cast<int>(args.size()), argv.data());
  std::filesystem::current_path(start_dir);
  return 0;
}
