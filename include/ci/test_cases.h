// Test cases: what a run says about each test it ran. The runner reads them from JUnit
// XML files and from Python unittest's verbose lines (src/runner/test_reports.h), sends
// them with its result, and the dispatcher stores them.
//
// On the wire (the cases part of a `results` body) and in the feed they are JSON lines,
// one case a line: {"name":..,"outcome":"passed|failed|error|skipped","ms":N,"message":..}.
// "message" is left out when empty. Every field is bounded (see the limits below): a
// longer name or message is cut (UTF-8 safe), further cases are dropped and counted.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ci/result.h"

namespace ci {

enum class CaseOutcome { Passed, Failed, Error, Skipped };
const char* to_string(CaseOutcome outcome);
bool parse_case_outcome(std::string_view text, CaseOutcome* out);

struct TestCase {
  std::string name;  // "suite.Class.test_name" style, as the report names it
  CaseOutcome outcome = CaseOutcome::Passed;
  uint64_t duration_ms = 0;
  std::string message;  // the failure or error message (first part), or the skip reason

  bool operator==(const TestCase&) const = default;
};

struct TestCaseLimits {
  static constexpr size_t kMaxCases = 20000;
  static constexpr size_t kMaxName = 512;       // bytes
  static constexpr size_t kMaxMessage = 4096;   // bytes
  static constexpr size_t kMaxBody = 8u << 20;  // bytes of the serialized cases
};

// Cuts a name or message to its limit on a UTF-8 boundary, replacing invalid UTF-8 and
// control bytes other than '\n' and '\t'.
std::string bound_case_text(std::string_view text, size_t max_bytes);

// One JSON line a case, each ending in '\n'. Stays within kMaxBody: cases past it are left
// out (the count of those left out is returned through *dropped when given).
std::string serialize_cases(const std::vector<TestCase>& cases, size_t* dropped = nullptr);
// Strict: every line a JSON object with a valid name and outcome; fields bounded.
Result<std::vector<TestCase>> parse_cases(std::string_view body);

}  // namespace ci
