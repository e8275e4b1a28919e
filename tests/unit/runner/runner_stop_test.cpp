// Stopping a runner: by default its test is killed and the job given back; a drain lets
// the test finish and delivers its results first.
#include <gtest/gtest.h>

#include "fake_dispatcher.h"
#include "process_probe.h"
#include "runner/runner.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace test_peer;

std::vector<std::string> last_two(const std::vector<std::string>& verbs) {
  if (verbs.size() < 2) return verbs;
  return {verbs.end() - 2, verbs.end()};
}

using RunnerStopTest = LongJobRunnerTest;

TEST_F(RunnerStopTest, StopKillsTheTestGivesTheJobBackAndLeaves) {
  start_a_long_job(9);
  runner->stop();
  EXPECT_TRUE(test_processes_gone());
  EXPECT_TRUE(fake.results().empty());
  ASSERT_EQ(fake.abandoned().size(), 1u);
  AbandonRequest abandoned = fake.abandoned().front();
  EXPECT_EQ(abandoned.job, 9u);
  EXPECT_EQ(abandoned.attempt, 1u);
  EXPECT_EQ(abandoned.runner, runner->address());
  ASSERT_EQ(fake.unregistered().size(), 1u);
  EXPECT_EQ(fake.unregistered().front().host, "127.0.0.1");
  EXPECT_EQ(fake.unregistered().front().port, runner->port());
  EXPECT_EQ(last_two(fake.verbs()), (std::vector<std::string>{"abandon", "unregister"}));
  EXPECT_EQ(log_count("cancelled by shutdown"), 1u);
  EXPECT_EQ(log_count("stopping: killed the test of job 9 and gave it back"), 1u);
  EXPECT_TRUE(test::list_dir(dir / "spool").empty()) << "no result, no process group noted";
}

TEST_F(RunnerStopTest, StopWithTheDispatcherGoneStillKillsTheTest) {
  start_a_long_job(9);
  fake.stop();
  runner->stop();
  EXPECT_TRUE(test_processes_gone());
  EXPECT_EQ(log_count("stopping: killed the test of job 9 but could not give it back"), 1u);
  EXPECT_EQ(log_count("could not unregister"), 1u);
}

TEST_F(RunnerStopTest, DrainLetsTheTestFinishAndDeliversBeforeLeaving) {
  start_a_long_job(11);
  uint16_t port = runner->port();
  runner->drain();
  EXPECT_EQ(runtest(port, 12, commit), Reply::Kind::Busy);
  EXPECT_EQ(pong(port), "pong busy 11 1");
  EXPECT_FALSE(runner->wait_drained(0ms));
  ASSERT_TRUE(open_gate(gate));
  ASSERT_TRUE(runner->wait_drained(30s));
  ASSERT_EQ(fake.results().size(), 1u);
  EXPECT_EQ(fake.results().front().output, "finished\n");
  EXPECT_EQ(runtest(port, 12, commit), Reply::Kind::Busy) << "drained is not open for work";
  runner->stop();
  EXPECT_TRUE(fake.abandoned().empty());
  EXPECT_EQ(last_two(fake.verbs()), (std::vector<std::string>{"results", "unregister"}));
  EXPECT_EQ(log_count("draining: taking no new job; waiting for job 11"), 1u);
  EXPECT_EQ(log_count("stopping: drained, every result delivered"), 1u);
  EXPECT_TRUE(test::list_dir(dir / "spool").empty());
  EXPECT_TRUE(test_processes_gone());
}

TEST_F(RunnerStopTest, StopDuringADrainKillsTheTestAndGivesTheJobBack) {
  start_a_long_job(11);
  runner->drain();
  EXPECT_FALSE(runner->wait_drained(0ms));
  runner->stop();
  EXPECT_TRUE(test_processes_gone());
  EXPECT_TRUE(fake.results().empty());
  ASSERT_EQ(fake.abandoned().size(), 1u);
  EXPECT_EQ(fake.abandoned().front().job, 11u);
  EXPECT_EQ(last_two(fake.verbs()), (std::vector<std::string>{"abandon", "unregister"}));
  EXPECT_EQ(log_count("stopping: killed the test of job 11 and gave it back"), 1u);
}

TEST_F(RunnerStopTest, ADrainThatCannotDeliverLeavesTheResultsInTheSpool) {
  start_a_long_job(11);
  runner->drain();
  fake.stop();
  ASSERT_TRUE(open_gate(gate));
  ASSERT_TRUE(test::wait_until([&] { return log_count("cannot deliver") > 0; }));
  EXPECT_FALSE(runner->wait_drained(0ms));
  runner->stop();
  EXPECT_TRUE(test::file_exists(spool_file(11)));
  EXPECT_EQ(log_count("job 11 attempt 1: results not delivered"), 1u);
  EXPECT_EQ(log_count("they remain in the spool"), 1u);
}

TEST_F(RunnerTest, ADrainWithNothingRunningIsOverAtOnce) {
  fake.start();
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  runner->drain();
  EXPECT_TRUE(runner->wait_drained(10s));
  EXPECT_EQ(runtest(runner->port(), 3, commit), Reply::Kind::Busy);
  runner->stop();
  EXPECT_EQ(fake.unregistered().size(), 1u);
  EXPECT_TRUE(fake.abandoned().empty());
}

}  // namespace
}  // namespace ci::runner
