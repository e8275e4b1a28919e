#include "runner/unittest_summary.h"

#include <gtest/gtest.h>

namespace ci::runner {
namespace {

TEST(UnittestSummary, AllPassed) {
  auto counts = parse_unittest_summary(
      "test_addition (test_pass.TestPasses.test_addition) ... ok\n\n"
      "----------------------------------------------------------------------\n"
      "Ran 1 test in 0.000s\n\nOK\n");
  EXPECT_EQ(counts.run, 1);
  EXPECT_EQ(counts.failed, 0);
}

TEST(UnittestSummary, PassedWithSkips) {
  auto counts = parse_unittest_summary("Ran 3 tests in 0.010s\n\nOK (skipped=1)\n");
  EXPECT_EQ(counts.run, 3);
  EXPECT_EQ(counts.failed, 0);
}

TEST(UnittestSummary, OneFailure) {
  auto counts = parse_unittest_summary(
      "FAIL: test_subtraction (test_fail.TestFails.test_subtraction)\n"
      "AssertionError: 1 != 2\n\n"
      "----------------------------------------------------------------------\n"
      "Ran 2 tests in 0.001s\n\nFAILED (failures=1)\n");
  EXPECT_EQ(counts.run, 2);
  EXPECT_EQ(counts.failed, 1);
}

TEST(UnittestSummary, FailuresAndErrorsAddUp) {
  auto counts = parse_unittest_summary("Ran 7 tests in 1.5s\n\nFAILED (failures=1, errors=2)\n");
  EXPECT_EQ(counts.run, 7);
  EXPECT_EQ(counts.failed, 3);
}

TEST(UnittestSummary, UnexpectedSuccessesFailButSkipsAndExpectedFailuresDoNot) {
  auto counts = parse_unittest_summary(
      "Ran 9 tests in 0.1s\n\n"
      "FAILED (failures=1, skipped=2, expected failures=3, unexpected successes=1)\n");
  EXPECT_EQ(counts.run, 9);
  EXPECT_EQ(counts.failed, 2);
}

TEST(UnittestSummary, NoSummaryMeansUnknownCounts) {
  auto counts = parse_unittest_summary("make: *** [test] Error 1\n");
  EXPECT_EQ(counts.run, -1);
  EXPECT_EQ(counts.failed, -1);
  counts = parse_unittest_summary("");
  EXPECT_EQ(counts.run, -1);
  EXPECT_EQ(counts.failed, -1);
}

TEST(UnittestSummary, TakesTheLastOfSeveralSummaries) {
  auto counts = parse_unittest_summary(
      "Ran 4 tests in 0.1s\n\nFAILED (errors=4)\n"
      "second suite\n"
      "Ran 2 tests in 0.2s\n\nOK\n");
  EXPECT_EQ(counts.run, 2);
  EXPECT_EQ(counts.failed, 0);
}

TEST(UnittestSummary, RunCutShortKnowsOnlyTheNumberRun) {
  auto counts = parse_unittest_summary("Ran 5 tests in 0.1s\n");
  EXPECT_EQ(counts.run, 5);
  EXPECT_EQ(counts.failed, -1);
}

TEST(UnittestSummary, NoTestsRan) {
  auto counts = parse_unittest_summary("\nRan 0 tests in 0.000s\n\nNO TESTS RAN\n");
  EXPECT_EQ(counts.run, 0);
  EXPECT_EQ(counts.failed, 0);
}

TEST(UnittestSummary, AcceptsWindowsLineEndings) {
  auto counts = parse_unittest_summary("Ran 2 tests in 0.1s\r\n\r\nFAILED (failures=2)\r\n");
  EXPECT_EQ(counts.run, 2);
  EXPECT_EQ(counts.failed, 2);
}

TEST(UnittestSummary, IgnoresLookalikeLines) {
  auto counts = parse_unittest_summary(
      "Ran 2 tests in 0.1s\n\nOK\n"
      "print('Ran out of tests')\n"
      "  Ran 9 tests in 1s\n"
      "Ran 3 testsuites in 1s\n");
  EXPECT_EQ(counts.run, 2);
  EXPECT_EQ(counts.failed, 0);
}

}  // namespace
}  // namespace ci::runner
