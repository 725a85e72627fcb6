// Placeholder until the tracing verbs land.
#include "cli.hpp"

namespace apr::cli {
int cmd_trace(Context&, const std::vector<std::string>&) {
  throw UsageError("'trace' is not available in this build");
}
}  // namespace apr::cli
