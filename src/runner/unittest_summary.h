// Test counts read from the summary that Python's unittest prints at the end of a run:
//
//   Ran 3 tests in 0.002s
//
//   FAILED (failures=1, errors=1, skipped=1)      or   OK   or   OK (skipped=1)
//
// A pure function: the runner reports the counts next to the status, which comes from
// the exit code, so a command that is not unittest just reports unknown counts.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace ci::runner {

struct TestCounts {
  int64_t run = -1;     // -1: unknown
  int64_t failed = -1;  // failures + errors + unexpected successes; -1: unknown
};

// Reads the last summary in `output` (a command may run several suites). Without a
// "Ran N tests" line both counts are unknown; with one but no verdict after it (the
// run was cut short), only the number run is known.
TestCounts parse_unittest_summary(std::string_view output);

// The lines of a test's output, each without its '\n' or "\r\n".
std::vector<std::string_view> unittest_lines(std::string_view output);

}  // namespace ci::runner
