// The dispatcher cancels a running job: the runner kills its test, every process of
// it, and reports the attempt as cancelled through the spool like any result.
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

class RunnerCancelTest : public LongJobRunnerTest {
 protected:
  Result<Reply> cancel(JobId job, uint32_t attempt) {
    return call(runner->port(), Request{CancelRequest{job, attempt}});
  }
};

TEST_F(RunnerCancelTest, ACancelledTestIsKilledAtOnceAndReportedCancelled) {
  start_a_long_job(9);
  const auto asked = std::chrono::steady_clock::now();
  auto reply = cancel(9, 1);
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->kind, Reply::Kind::Ok) << reply->reason();
  // Promised: gone within a second. Checked with a deadline of a few seconds (the
  // machine is shared, and this runs under sanitizers too); the time it took is in the
  // message.
  bool gone = test_processes_gone(5s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - asked);
  EXPECT_TRUE(gone) << "the test's processes still run " << took.count()
                    << " ms after the cancel (promised: within 1 s)";
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  ResultsRequest results = fake.results().front();
  EXPECT_EQ(results.job, 9u);
  EXPECT_EQ(results.attempt, 1u);
  EXPECT_EQ(results.status, TestStatus::Cancelled);
  EXPECT_EQ(results.output.find("finished"), std::string::npos);
  EXPECT_TRUE(test::wait_until([&] { return pong(runner->port()) == "pong idle"; }));
  EXPECT_TRUE(test::list_dir(dir / "spool").empty()) << "delivered, so out of the spool";
  EXPECT_EQ(log_count("cancelled by the dispatcher"), 1u);
}

TEST_F(RunnerCancelTest, ACancelForAnotherJobOrAttemptIsRefusedAndTheTestGoesOn) {
  start_a_long_job(9);
  for (auto [job, attempt] : {std::pair<JobId, uint32_t>{9, 2}, {8, 1}}) {
    auto reply = cancel(job, attempt);
    ASSERT_TRUE(reply) << reply.error();
    EXPECT_EQ(reply->kind, Reply::Kind::Err);
    EXPECT_EQ(reply->reason(),
              "not running job " + std::to_string(job) + " attempt " + std::to_string(attempt));
  }
  EXPECT_FALSE(test_probe::process_gone(shell));
  ASSERT_TRUE(open_gate(gate));
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  EXPECT_EQ(fake.results().front().status, TestStatus::Passed);
  EXPECT_NE(fake.results().front().output.find("finished"), std::string::npos);
}

TEST_F(RunnerCancelTest, AnIdleRunnerRefusesACancel) {
  fake.start();
  start_runner();
  auto reply = cancel(3, 1);
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->kind, Reply::Kind::Err);
  EXPECT_EQ(reply->reason(), "not running job 3 attempt 1");
}

// With the dispatcher unable to take it, the cancelled result waits in the spool.
TEST_F(RunnerCancelTest, TheResultOfACancelIsSpooledLikeAnyOther) {
  start_a_long_job(4);
  fake.busy_results(true);  // the dispatcher cannot take results for now
  ASSERT_EQ(cancel(4, 1)->kind, Reply::Kind::Ok);
  EXPECT_TRUE(test::wait_until([&] { return test::file_exists(spool_file(4)); }));
  fake.busy_results(false);
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  EXPECT_EQ(fake.results().front().status, TestStatus::Cancelled);
}

}  // namespace
}  // namespace ci::runner
