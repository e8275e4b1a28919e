// Fuzz target for the test reports a test leaves: JUnit XML (read_junit) and unittest's
// verbose output (read_unittest_output), both written by code the runner did not write.
//
// Whatever the bytes, nothing may crash, leak or reach undefined behaviour, and:
//  - no more cases than TestCaseLimits::kMaxCases are kept, each name and message within
//    its bound, and every note is one line;
//  - the cases serialize (serialize_cases) to a body that parse_cases reads back, case for
//    case (an unnamed case gets a name).
// A broken invariant prints what broke and aborts, which the fuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "ci/test_cases.h"
#include "runner/test_reports.h"

namespace {

using ci::TestCaseLimits;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "report_fuzzer: %s\n", what);
  std::abort();
}

void check_cases(const ci::runner::ReportCases& read) {
  check(read.cases.size() <= TestCaseLimits::kMaxCases, "more cases than the limit");
  for (const auto& c : read.cases) {
    check(c.name.size() <= TestCaseLimits::kMaxName, "a name over its bound");
    check(c.message.size() <= TestCaseLimits::kMaxMessage, "a message over its bound");
  }
  for (const auto& note : read.notes)
    check(note.find('\n') == std::string::npos, "a note of more than one line");
  size_t dropped = 0;
  std::string body = ci::serialize_cases(read.cases, &dropped);
  auto back = ci::parse_cases(body);
  check(back.ok(), "serialized cases do not parse");
  check(back->size() + dropped == read.cases.size(), "cases lost on a round trip");
  for (size_t i = 0; i < back->size(); ++i) {
    const ci::TestCase& a = read.cases[i];
    const ci::TestCase& b = (*back)[i];
    check(a.name.empty() || a.name == b.name, "a name changes on a round trip");
    check(a.outcome == b.outcome && a.duration_ms == b.duration_ms && a.message == b.message,
          "a case changes on a round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  ci::runner::ReportCases junit;
  ci::runner::read_junit(input, "fuzz.xml", ci::runner::ReportLimits{}, &junit);
  check_cases(junit);
  check_cases(ci::runner::read_unittest_output(input));
  return 0;
}
