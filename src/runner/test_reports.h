// The test cases of a run, read from what the test left: JUnit XML files in the job's
// reports folder (CI_REPORTS_DIR), or else Python unittest's verbose lines in its
// output. The reports are the test's, so hostile: every file is bounded in size, cases
// in number (TestCaseLimits), nesting in depth, and a file that cannot be read is
// skipped with a one-line reason for the run's output.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ci/test_cases.h"

namespace ci::runner {

struct ReportLimits {
  size_t max_file = 32u << 20;  // bytes of one XML file; larger ones are skipped
  size_t max_files = 1000;      // XML files read from the folder
  size_t max_depth = 64;        // nesting of <testsuite> elements
};

struct ReportCases {
  std::vector<TestCase> cases;
  size_t files = 0;                // reports read (JUnit) with at least their root
  size_t dropped = 0;              // cases past TestCaseLimits::kMaxCases
  size_t failed = 0;               // cases failed or in error, dropped ones included
  std::vector<std::string> notes;  // one line each: a report skipped or cut, and why
};

// Appends `c` to `out` with its name and message bounded, or counts it dropped past
// TestCaseLimits::kMaxCases; counts it failed if it failed or is in error.
void add_case(TestCase c, ReportCases* out);

// The cases of one JUnit XML document: <testsuites> and <testsuite> (nested too), each
// <testcase classname name time> with <failure>, <error> or <skipped> (pytest's and
// GoogleTest's shapes). `name` names the document in notes. Appends to `out`.
void read_junit(std::string_view xml, const std::string& name, const ReportLimits& limits,
                ReportCases* out);

// Every regular *.xml file directly in `dir`, by name. Links are not followed: the test
// made them, and the runner may see what the test may not.
ReportCases read_junit_dir(const std::string& dir, const ReportLimits& limits = {});

// The cases in Python unittest's verbose output (-v):
//   test_x (mod.Class.test_x) ... ok | FAIL | ERROR | skipped 'why' | expected failure |
//                                  unexpected success
// (before Python 3.11 the parenthesis holds mod.Class only; a docstring's first line may
// sit on a line of its own before " ... "). Failures and errors take their message from
// the traceback blocks after the ===== separators (its last part, within the bound).
// "unexpected success" counts as failed, "expected failure" as passed, as unittest's
// summary does.
ReportCases read_unittest_output(std::string_view output);

}  // namespace ci::runner
