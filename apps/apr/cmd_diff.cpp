// Placeholder until the tracing verbs land.
#include "cli.hpp"

namespace apr::cli {
int cmd_diff(Context&, const std::vector<std::string>&) {
  throw UsageError("'diff' is not available in this build");
}
}  // namespace apr::cli
