// The test cases of a job: from the JUnit reports the test writes to CI_REPORTS_DIR,
// else from unittest's verbose output; real repositories and real processes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "ci/test_cases.h"
#include "runner/job_run.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

class JobCasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    first_commit = test::make_master_repo(dir / "master");
    test::clone_repo(dir / "master", dir / "clone");
    options.repo = dir / "clone";
    options.work_root = dir / "work";
    std::filesystem::create_directories(options.work_root);
    options.sandbox.enabled = false;
    options.timeout = 60s;
    options.kill_grace = 500ms;
  }

  JobRunOutcome run(std::string* live = nullptr) {
    auto on_output = [live](std::string_view chunk) {
      if (live) live->append(chunk);
    };
    return run_job(options, RuntestRequest{3, 2, first_commit, "master"}, "127.0.0.1:8900", nullptr,
                   nullptr, on_output);
  }

  std::vector<TestCase> cases_of(const ResultsRequest& r) {
    auto cases = parse_cases(r.cases);
    EXPECT_TRUE(cases) << cases.error();
    return cases ? *cases : std::vector<TestCase>{};
  }

  TempDir dir;
  std::string first_commit;
  JobRunOptions options;
};

constexpr char kWriteReport[] =
    "test -d \"$CI_REPORTS_DIR\" && test -z \"$(ls -A \"$CI_REPORTS_DIR\")\" || exit 9; "
    "echo \"<testsuite><testcase classname='a.B' name='c' time='0.5'/>"
    "<testcase name='d'><failure message='boom'/></testcase></testsuite>\" "
    "> \"$CI_REPORTS_DIR/r.xml\"; echo printed";

TEST_F(JobCasesTest, CasesComeFromTheReportsFolderWhichIsRemovedAfterTheJob) {
  options.test_command = kWriteReport;
  std::string live;
  auto outcome = run(&live);
  const ResultsRequest& r = outcome.results;
  EXPECT_EQ(r.status, TestStatus::Passed) << r.output;
  EXPECT_EQ(cases_of(r), (std::vector<TestCase>{{"a.B.c", CaseOutcome::Passed, 500, ""},
                                                {"d", CaseOutcome::Failed, 0, "boom"}}));
  EXPECT_EQ(r.output, "printed\n[ci] 2 test cases read from 1 JUnit report in CI_REPORTS_DIR\n");
  EXPECT_EQ(live, r.output) << "the live log gets the same lines";
  EXPECT_TRUE(test::list_dir(options.work_root).empty()) << "checkout and reports removed";
}

TEST_F(JobCasesTest, WithoutReportsCasesComeFromTheUnittestOutput) {
  auto outcome = run();
  const ResultsRequest& r = outcome.results;
  auto cases = cases_of(r);
  ASSERT_EQ(cases.size(), 2u) << r.output;
  EXPECT_EQ(cases[0].name, "test_fail.TestFails.test_subtraction");
  EXPECT_EQ(cases[0].outcome, CaseOutcome::Failed);
  EXPECT_NE(cases[0].message.find("AssertionError: 1 != 2"), std::string::npos);
  EXPECT_EQ(cases[1].name, "test_pass.TestPasses.test_addition");
  EXPECT_TRUE(r.output.ends_with("[ci] 2 test cases read from the unittest output\n")) << r.output;
}

// A test that writes a JUnit report and prints no unittest summary: the counts the
// dashboard and cictl show come from its cases, counted as unittest counts ("Ran N
// tests" includes the skipped ones; failures and errors failed).
TEST_F(JobCasesTest, WithoutAUnittestSummaryTheCountsComeFromTheReportsCases) {
  options.test_command =
      "echo \"<testsuites><testsuite><testcase name='a'/><testcase name='b'><failure/></testcase>"
      "</testsuite><testsuite><testcase name='c'><error/></testcase>"
      "<testcase name='d'><skipped/></testcase><testcase name='e'/></testsuite></testsuites>\" "
      "> \"$CI_REPORTS_DIR/r.xml\"; exit 1";
  auto outcome = run();
  const ResultsRequest& r = outcome.results;
  EXPECT_EQ(r.status, TestStatus::Failed) << r.output;
  ASSERT_EQ(cases_of(r).size(), 5u) << r.output;
  EXPECT_EQ(r.tests_run, 5);
  EXPECT_EQ(r.tests_failed, 2);
}

TEST_F(JobCasesTest, AReportWithoutFailuresCountsNoneFailed) {
  options.test_command =
      "echo \"<testsuite><testcase name='a'/><testcase name='b'/></testsuite>\" "
      "> \"$CI_REPORTS_DIR/r.xml\"";
  auto outcome = run();
  EXPECT_EQ(outcome.results.tests_run, 2) << outcome.results.output;
  EXPECT_EQ(outcome.results.tests_failed, 0);
}

// unittest's verbose lines without the summary after them (the run was cut short): the
// counts come from the lines read.
TEST_F(JobCasesTest, VerboseLinesWithoutASummaryGiveTheCounts) {
  options.test_command =
      "printf 'test_a (m.C.test_a) ... ok\\ntest_b (m.C.test_b) ... FAIL\\n"
      "test_c (m.C.test_c) ... skipped \\047why\\047\\n'; exit 1";
  auto outcome = run();
  ASSERT_EQ(cases_of(outcome.results).size(), 3u) << outcome.results.output;
  EXPECT_EQ(outcome.results.tests_run, 3);
  EXPECT_EQ(outcome.results.tests_failed, 1);
}

// unittest's summary is the count when there is one: the reports only add cases.
TEST_F(JobCasesTest, AUnittestSummaryKeepsItsCounts) {
  options.test_command =
      "echo \"<testsuite><testcase name='a'/></testsuite>\" > \"$CI_REPORTS_DIR/r.xml\"; "
      "printf 'Ran 7 tests in 0.1s\\n\\nFAILED (failures=3)\\n'";
  auto outcome = run();
  EXPECT_EQ(cases_of(outcome.results).size(), 1u) << outcome.results.output;
  EXPECT_EQ(outcome.results.tests_run, 7);
  EXPECT_EQ(outcome.results.tests_failed, 3);
}

TEST_F(JobCasesTest, ASkippedReportIsSaidInTheOutput) {
  options.test_command = "echo '<testsuite>' > \"$CI_REPORTS_DIR/bad.xml\"; printf no-newline";
  auto outcome = run();
  EXPECT_EQ(outcome.results.cases, "");
  EXPECT_EQ(outcome.results.output.substr(0, 44), "no-newline\n[ci] report bad.xml skipped: not ")
      << outcome.results.output;
}

TEST_F(JobCasesTest, NothingToReadAddsNothing) {
  options.test_command = "echo plain";
  auto outcome = run();
  EXPECT_EQ(outcome.results.output, "plain\n");
  EXPECT_EQ(outcome.results.cases, "");
  EXPECT_EQ(outcome.results.tests_run, -1) << "no cases, no summary: unknown";
  EXPECT_EQ(outcome.results.tests_failed, -1);
}

// In the sandbox the reports folder is the one place besides the checkout (and the
// scratch folders) that the test can write to and the runner reads.
TEST_F(JobCasesTest, TheReportsFolderIsWritableInTheSandbox) {
  auto bwrap = find_program("bwrap");
  if (!bwrap) GTEST_SKIP() << "no bubblewrap";
  options.sandbox.enabled = true;
  options.sandbox.bwrap = *bwrap;
  options.sandbox.hidden = {options.work_root};
  options.test_command = kWriteReport;
  auto outcome = run();
  EXPECT_EQ(outcome.results.status, TestStatus::Passed) << outcome.results.output;
  EXPECT_EQ(cases_of(outcome.results).size(), 2u) << outcome.results.output;
}

}  // namespace
}  // namespace ci::runner
