#include <gtest/gtest.h>

#include <fstream>

#include "runner/test_reports.h"
#include "runner/unittest_summary.h"
#include "test_support.h"

namespace ci::runner {
namespace {

const TestCase* find_case(const ReportCases& r, const std::string& name) {
  for (const auto& c : r.cases)
    if (c.name == name) return &c;
  return nullptr;
}

// Every kind of verbose line, from a real Python run.
constexpr char kSuite[] = R"(import unittest

class Kinds(unittest.TestCase):
    def test_ok(self):
        pass

    def test_doc(self):
        """Says what it checks.

        More lines that unittest does not print."""
        pass

    def test_fail(self):
        self.assertEqual(1, 2, "numbers differ")

    def test_error(self):
        raise KeyError("missing")

    @unittest.skip("not today")
    def test_skip(self):
        pass

    @unittest.expectedFailure
    def test_expected(self):
        self.fail()

    @unittest.expectedFailure
    def test_unexpected(self):
        pass

    def test_prints(self):
        print("printed mid-line", flush=True)

# A generated test whose name has spaces and colons.
setattr(Kinds, "test_with space: and colon", lambda self: None)
)";

TEST(UnittestCases, ARealVerboseRun) {
  test::TempDir dir;
  std::ofstream(dir / "test_kinds.py") << kSuite;
  CommandSpec spec;
  spec.argv = {"python3", "-m", "unittest", "-v", "test_kinds"};
  spec.cwd = dir.path();
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  auto ran = run_command(spec);
  ASSERT_TRUE(ran) << ran.error();
  auto r = read_unittest_output(ran->output);
  ASSERT_EQ(r.cases.size(), 9u) << ran->output;
  auto expect = [&](const std::string& method, CaseOutcome outcome, const std::string& message) {
    const TestCase* c = find_case(r, "test_kinds.Kinds." + method);
    ASSERT_TRUE(c) << method << "\n" << ran->output;
    EXPECT_EQ(c->outcome, outcome) << method;
    EXPECT_NE(c->message.find(message), std::string::npos) << method << ": " << c->message;
  };
  expect("test_ok", CaseOutcome::Passed, "");
  expect("test_doc", CaseOutcome::Passed, "");
  expect("test_fail", CaseOutcome::Failed, "AssertionError: 1 != 2 : numbers differ");
  expect("test_error", CaseOutcome::Error, "KeyError: 'missing'");
  expect("test_skip", CaseOutcome::Skipped, "not today");
  expect("test_expected", CaseOutcome::Passed, "expected failure");
  expect("test_unexpected", CaseOutcome::Failed, "unexpected success");
  expect("test_prints", CaseOutcome::Passed, "");
  expect("test_with space: and colon", CaseOutcome::Passed, "");
  // The same count of failures as the summary's.
  TestCounts counts = parse_unittest_summary(ran->output);
  int64_t failed = 0;
  for (const auto& c : r.cases)
    failed += c.outcome == CaseOutcome::Failed || c.outcome == CaseOutcome::Error;
  EXPECT_EQ(counts.run, 9);
  EXPECT_EQ(counts.failed, failed);
}

// Before Python 3.11 the parenthesis held the class only.
TEST(UnittestCases, TheOlderFormat) {
  auto r = read_unittest_output(
      "test_addition (test_pass.TestPasses) ... ok\n"
      "test_subtraction (test_fail.TestFails) ... FAIL\n\n"
      "======================================================================\n"
      "FAIL: test_subtraction (test_fail.TestFails.test_subtraction)\n"
      "----------------------------------------------------------------------\n"
      "Traceback (most recent call last):\n"
      "AssertionError: 1 != 2\n\n"
      "----------------------------------------------------------------------\n"
      "Ran 2 tests in 0.001s\n\nFAILED (failures=1)\n");
  ASSERT_EQ(r.cases.size(), 2u);
  EXPECT_EQ(r.cases[0],
            (TestCase{"test_pass.TestPasses.test_addition", CaseOutcome::Passed, 0, ""}));
  EXPECT_EQ(r.cases[1].name, "test_fail.TestFails.test_subtraction");
  EXPECT_EQ(r.cases[1].message, "Traceback (most recent call last):\nAssertionError: 1 != 2");
}

TEST(UnittestCases, OtherOutputHasNoCases) {
  EXPECT_TRUE(read_unittest_output("make: *** [test] Error 1\nok\nFAIL\n").cases.empty());
  EXPECT_TRUE(read_unittest_output("").cases.empty());
}

TEST(UnittestCases, ALongTracebackKeepsItsLastPart) {
  std::string out =
      "test_x (m.C.test_x) ... FAIL\n\n"
      "======================================================================\n"
      "FAIL: test_x (m.C.test_x)\n"
      "----------------------------------------------------------------------\n";
  for (int i = 0; i < 5000; ++i) out += "  frame " + std::to_string(i) + "\n";
  out += "AssertionError: the end\n";
  auto r = read_unittest_output(out);
  ASSERT_EQ(r.cases.size(), 1u);
  EXPECT_LE(r.cases[0].message.size(), TestCaseLimits::kMaxMessage);
  EXPECT_TRUE(r.cases[0].message.ends_with("AssertionError: the end")) << r.cases[0].message;
}

}  // namespace
}  // namespace ci::runner
