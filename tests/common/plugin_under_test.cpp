// SPDX-License-Identifier: MIT
// apr_test::plugin() for a test program built with APR_TEST_PLUGIN_PATH, and its teardown.
#include "plugin_under_test.hpp"

#define CATCH_CONFIG_EXTERNAL_INTERFACES  // the listener base class
#include <catch2/catch.hpp>

#ifndef APR_TEST_PLUGIN_PATH
#error "plugin_under_test.cpp needs APR_TEST_PLUGIN_PATH, the plugin's file"
#endif

namespace apr_test {
namespace {

PluginUnderTest*& instance() {
  static PluginUnderTest* plugin = nullptr;
  return plugin;
}

// Closes the device and shuts the plugin down when the test run ends, while main is still
// running. Left to a static destructor, shutdown would run after the exit handlers that the
// driver stack under a plugin registers (lavapipe's queue threads are gone by then, and its
// vkDestroyInstance corrupts the heap). The library itself stays loaded until the process ends:
// unloading the Vulkan plugin after a failed call crashes the process at exit.
class ShutdownAtRunEnd : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;
  void testRunEnded(const Catch::TestRunStats& stats) override {
    if (instance()) instance()->close();
    TestEventListenerBase::testRunEnded(stats);
  }
};
CATCH_REGISTER_LISTENER(ShutdownAtRunEnd)

}  // namespace

PluginUnderTest& plugin() {
  if (!instance()) instance() = new PluginUnderTest(APR_TEST_PLUGIN_PATH);
  return *instance();
}

}  // namespace apr_test
