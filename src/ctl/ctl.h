// cictl: the command line for people and scripts, over the same protocol.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace ci {

// Runs cictl with its arguments (without the program name), printing to out and err.
// Returns the process exit code: 0 success, 1 failure, 2 bad usage, 3 the server is
// busy (at its connection limit; nothing was done, and trying again later may work).
int run_ctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// Lines of space-separated columns, padded so the columns line up.
std::string align_columns(const std::string& text);

}  // namespace ci
