// A runner of several slots runs that many jobs at once, each in a checkout of its own
// with its own cancel, answers BUSY only when every slot is taken, lists its slots in
// its pong and gives back every running job when it stops.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "fake_dispatcher.h"
#include "runner/runner.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace test_peer;

class RunnerSlotsTest : public RunnerTest {
 protected:
  // Each job notes it started, prints its start time and folder, and runs until the
  // file `release` exists (or its own timeout).
  void SetUp() override {
    RunnerTest::SetUp();
    options.job.test_command = "echo \"start $(date +%s%N)\"; echo \"folder $PWD\"; touch '" +
                               (dir / "started.") + "'$CI_JOB_ID; while [ ! -e '" +
                               (dir / "release") +
                               "' ]; do sleep 0.02; done; echo \"end $(date +%s%N)\"";
    options.job.timeout = 120s;
    fake.start();
  }

  bool started(JobId job) { return test::file_exists(dir / ("started." + std::to_string(job))); }
  void release() { test::run({"touch", dir / "release"}); }

  ResultsRequest result_of(JobId job) { return fake.result_of(job); }

  // The value after `word ` in the output's line that starts with it.
  static std::string field(const std::string& output, const std::string& word) {
    std::istringstream lines(output);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind(word + " ", 0) == 0) return line.substr(word.size() + 1);
    return "";
  }
};

TEST_F(RunnerSlotsTest, FourSlotsRunFourJobsAtOnceEachInItsOwnCheckout) {
  options.slots = 4;
  options.labels = {"linux", "py3.11"};
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  RegisterRequest registered = fake.registrations().front();
  EXPECT_EQ(registered.slots, 4u);
  EXPECT_EQ(registered.labels, (std::vector<std::string>{"linux", "py3.11"}));
  EXPECT_EQ(registered.repos, RepoScope::Default);
  EXPECT_EQ(pong(runner->port()), "pong slots - - - -");

  for (JobId job = 1; job <= 4; ++job)
    ASSERT_EQ(runtest(runner->port(), job, commit), Reply::Kind::Ok) << "job " << job;
  ASSERT_TRUE(test::wait_until([&] {
    for (JobId job = 1; job <= 4; ++job)
      if (!started(job)) return false;
    return true;
  })) << "all four tests run at once";
  EXPECT_EQ(runtest(runner->port(), 5, commit), Reply::Kind::Busy) << "every slot is taken";
  std::string slots = pong(runner->port());
  for (const char* held : {"1/1", "2/1", "3/1", "4/1"})
    EXPECT_NE(slots.find(held), std::string::npos) << slots;
  EXPECT_EQ(slots.rfind("pong slots ", 0), 0u) << slots;

  release();
  std::set<std::string> folders;
  uint64_t last_start = 0, first_end = UINT64_MAX;
  for (JobId job = 1; job <= 4; ++job) {
    ResultsRequest result = result_of(job);
    EXPECT_EQ(result.status, TestStatus::Passed) << result.output;
    folders.insert(field(result.output, "folder"));
    last_start = std::max<uint64_t>(last_start, std::stoull(field(result.output, "start")));
    first_end = std::min<uint64_t>(first_end, std::stoull(field(result.output, "end")));
  }
  EXPECT_EQ(folders.size(), 4u) << "no two jobs in one checkout";
  EXPECT_LT(last_start, first_end) << "the four ran at the same time";
  EXPECT_TRUE(test::wait_until([&] { return pong(runner->port()) == "pong slots - - - -"; }));
  ASSERT_EQ(runtest(runner->port(), 5, commit), Reply::Kind::Ok) << "a slot is free again";
  EXPECT_EQ(result_of(5).status, TestStatus::Passed);
}

TEST_F(RunnerSlotsTest, ACancelStopsOnlyTheNamedSlotsJob) {
  options.slots = 2;
  start_runner();
  ASSERT_EQ(runtest(runner->port(), 1, commit), Reply::Kind::Ok);
  ASSERT_EQ(runtest(runner->port(), 2, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return started(1) && started(2); }));
  auto reply = call(runner->port(), Request{CancelRequest{2, 1}});
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->kind, Reply::Kind::Ok) << reply->reason();
  EXPECT_EQ(result_of(2).status, TestStatus::Cancelled);
  EXPECT_TRUE(test::wait_until([&] { return pong(runner->port()) == "pong slots 1/1 -"; }))
      << pong(runner->port());
  EXPECT_EQ(fake.results().size(), 1u) << "job 1 runs on";
  release();
  ResultsRequest first = result_of(1);
  EXPECT_EQ(first.status, TestStatus::Passed) << first.output;
  EXPECT_NE(first.output.find("end "), std::string::npos);
}

TEST_F(RunnerSlotsTest, StoppingGivesBackEveryRunningJob) {
  options.slots = 3;
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  for (JobId job = 1; job <= 3; ++job)
    ASSERT_EQ(runtest(runner->port(), job, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return started(1) && started(2) && started(3); }));
  runner->stop();
  std::set<JobId> given_back;
  for (const auto& abandon : fake.abandoned()) given_back.insert(abandon.job);
  EXPECT_EQ(given_back, (std::set<JobId>{1, 2, 3}));
  EXPECT_TRUE(fake.results().empty());
  EXPECT_EQ(fake.unregistered().size(), 1u);
}

TEST_F(RunnerSlotsTest, ARestartedRunnerDeliversTheSpooledResultsOfEverySlot) {
  options.slots = 2;
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  fake.busy_results(true);  // the dispatcher cannot take results for now
  ASSERT_EQ(runtest(runner->port(), 1, commit), Reply::Kind::Ok);
  ASSERT_EQ(runtest(runner->port(), 2, commit), Reply::Kind::Ok);
  release();
  ASSERT_TRUE(test::wait_until(
      [&] { return test::file_exists(spool_file(1)) && test::file_exists(spool_file(2)); }));
  std::string slots = pong(runner->port());
  EXPECT_TRUE(slots == "pong slots 1/1 2/1" || slots == "pong slots 2/1 1/1")
      << slots << ": undelivered results are still the runner's jobs";
  options.goodbye_timeout = 200ms;
  runner.reset();
  fake.busy_results(false);
  start_runner();
  EXPECT_TRUE(test::wait_until([&] { return fake.results().size() == 2; }));
  std::set<JobId> delivered;
  for (const auto& r : fake.results()) delivered.insert(r.job);
  EXPECT_EQ(delivered, (std::set<JobId>{1, 2}));
}

TEST_F(RunnerSlotsTest, AOneSlotRunnerAnswersAsBefore) {
  start_runner();
  EXPECT_EQ(pong(runner->port()), "pong idle");
  ASSERT_EQ(runtest(runner->port(), 1, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return started(1); }));
  EXPECT_EQ(pong(runner->port()), "pong busy 1 1");
  EXPECT_EQ(runtest(runner->port(), 2, commit), Reply::Kind::Busy);
  EXPECT_TRUE(test::file_exists(dir / "state/running-test"));
  release();
  EXPECT_EQ(result_of(1).status, TestStatus::Passed);
}

}  // namespace
}  // namespace ci::runner
