// Placeholder until the tracing verbs land.
#include "cli.hpp"

namespace apr::cli {
int cmd_bisect(Context&, const std::vector<std::string>&) {
  throw UsageError("'bisect' is not available in this build");
}
}  // namespace apr::cli
