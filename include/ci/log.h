// Logging setup shared by the executables: one spdlog logger per daemon.
#pragma once

#include <string>

#include "ci/result.h"

namespace ci {

// Levels: trace, debug, info, warn, error, off. Logs go to stderr.
Result<void> setup_logging(const std::string& daemon_name, const std::string& level);

}  // namespace ci
