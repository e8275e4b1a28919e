// Logging setup shared by the executables: one spdlog logger per daemon.
#pragma once

#include <string>
#include <string_view>

#include "ci/result.h"

namespace spdlog {
class logger;
}

namespace ci {

// Levels: trace, debug, info, warn, error, off. Logs go to stderr.
Result<void> setup_logging(const std::string& daemon_name, const std::string& level);

// The daemons' line format: time, daemon, level, then the message through
// escape_log_message(). Every line goes through it, so what a peer or a repository
// wrote (branch names, commit subjects, peer messages, git's errors naming refs) can
// neither break a line nor put raw bytes in the log, even where it was not escaped
// with escape_for_log().
void set_log_format(spdlog::logger& logger);

// A log message as written: every byte that is not printable ASCII, control characters
// and bytes 0x80 and above (UTF-8 or not), as \xNN. A backslash stays as it is, so text
// already escaped with escape_for_log() comes out unchanged.
std::string escape_log_message(std::string_view text);

}  // namespace ci
