#include "ci/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace ci {

Result<void> setup_logging(const std::string& daemon_name, const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  // from_str answers "off" for any name it does not know.
  if (lvl == spdlog::level::off && level != "off")
    return make_error("unknown log level '" + level +
                      "' (use trace, debug, info, warn, error or off)");
  auto logger = spdlog::stderr_logger_mt(daemon_name);
  logger->set_level(lvl);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %n %^%l%$ %v");
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  return {};
}

}  // namespace ci
