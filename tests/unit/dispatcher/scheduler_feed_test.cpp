// The scheduler's event feed and cancel, driven with a fake time: what a subscriber
// sees of each change, in order, and what a cancel does to the queue and the runner.
#include <gtest/gtest.h>

#include "dispatcher/scheduler.h"
#include "scheduler_offers.h"

namespace ci {
namespace {

using namespace std::chrono_literals;

const std::string kCommitA(40, 'a');
const std::string kCommitB(40, 'b');
const std::string kCommitC(40, 'c');
constexpr int64_t kWall = 1764720000000;  // the wall-clock time of t0

class SchedulerFeedTest : public ::testing::Test {
 protected:
  SchedulerFeedTest() { sched.set_wall_origin(t0, kWall); }

  std::vector<std::string> kinds() {
    std::vector<std::string> out;
    for (const FeedEvent& e : sched.take_feed()) out.push_back(to_string(e.kind));
    return out;
  }

  Offer offer_and_accept() { return ci::offer_and_accept(sched, now); }

  Scheduler::Options options{3, 3};
  Scheduler sched{options};
  TimePoint t0{};
  TimePoint now = t0;
};

TEST_F(SchedulerFeedTest, AJobsLifeIsItsEventsInOrderWithTheJobAsItIsAfterEach) {
  sched.register_runner("127.0.0.1:8900", now);
  CommitInfo info{"Alice", "alice@example.com", "Fix it", 1764710000};
  sched.submit(kCommitA, "main", now, info);
  now += 2s;
  Offer o = offer_and_accept();
  now += 3s;
  ASSERT_EQ(sched.check_result(o.job, o.attempt, o.runner), ResultVerdict::Accept);
  JobOutcome out;
  out.status = TestStatus::Failed;
  out.tests_run = 2;
  out.tests_failed = 1;
  out.duration_ms = 2900;
  out.runner = o.runner;
  out.attempt = o.attempt;
  sched.finish_result(o.job, out, now, {{"t.T.test_x", CaseOutcome::Failed, 5, "boom"}});

  auto feed = sched.take_feed();
  ASSERT_EQ(feed.size(), 4u);
  EXPECT_EQ(feed[0].kind, EventKind::RunnerJoined);
  EXPECT_EQ(feed[0].runner, "127.0.0.1:8900");
  EXPECT_EQ(feed[1].kind, EventKind::JobQueued);
  EXPECT_EQ(feed[1].job.commit_info, info);
  EXPECT_EQ(feed[1].job.queued_ms, kWall);
  EXPECT_EQ(feed[1].job.state, "queued");
  EXPECT_EQ(feed[2].kind, EventKind::JobStarted);
  EXPECT_EQ(feed[2].job.started_ms, kWall + 2000);
  EXPECT_EQ(feed[2].job.runner, "127.0.0.1:8900");
  EXPECT_EQ(feed[3].kind, EventKind::JobFinished);
  EXPECT_EQ(feed[3].job.status, TestStatus::Failed);
  EXPECT_EQ(feed[3].job.finished_ms, kWall + 5000);
  ASSERT_EQ(feed[3].cases.size(), 1u);
  EXPECT_EQ(feed[3].cases[0].message, "boom");
  for (size_t i = 0; i < feed.size(); ++i) EXPECT_EQ(feed[i].seq, i + 1);
  // Each job event carries the seq of that change; the job holds its latest.
  EXPECT_EQ(feed[3].job.seq, 4u);
  EXPECT_EQ(sched.job(o.job)->seq, 4u);
  EXPECT_EQ(sched.last_feed_seq(), 4u);
}

TEST_F(SchedulerFeedTest, LogEventsAreOneABatchWithTheNewestSize) {
  sched.register_runner("127.0.0.1:8900", now);
  sched.submit(kCommitA, "main", now);
  Offer o = offer_and_accept();
  sched.take_feed();
  sched.log_grew(o.job, o.attempt, 100, now);
  sched.log_grew(o.job, o.attempt, 250, now);
  sched.log_grew(o.job, o.attempt, 200, now);  // an older answer arriving late
  auto feed = sched.take_feed();
  ASSERT_EQ(feed.size(), 1u);
  EXPECT_EQ(feed[0].kind, EventKind::JobLog);
  EXPECT_EQ(feed[0].log_size, 250u);
  sched.log_grew(o.job, o.attempt, 300, now);
  EXPECT_EQ(kinds(), std::vector<std::string>{"job.log"});
}

TEST_F(SchedulerFeedTest, AFailedWriteGivesEventsBackInOrder) {
  sched.submit(kCommitA, "main", now);
  auto first = sched.take_feed();
  sched.submit(kCommitB, "main", now);
  sched.return_feed(std::move(first));
  auto feed = sched.take_feed();
  ASSERT_EQ(feed.size(), 2u);
  EXPECT_LT(feed[0].seq, feed[1].seq);
  EXPECT_EQ(feed[0].job.commit, kCommitA);
}

TEST_F(SchedulerFeedTest, NumberingGoesOnFromTheStoresLastEvent) {
  sched.restore_feed_seq(41);
  sched.submit(kCommitA, "main", now);
  EXPECT_EQ(sched.take_feed().at(0).seq, 42u);
}

TEST_F(SchedulerFeedTest, AJobBackInTheQueueAfterItsRunnerDiedIsQueuedAgainInTheFeed) {
  sched.register_runner("127.0.0.1:8900", now);
  sched.submit(kCommitA, "main", now);
  Offer o = offer_and_accept();
  sched.take_feed();
  for (int i = 0; i < 3; ++i)
    for (const auto& t : sched.ping_targets()) sched.ping_missed(t, now);
  EXPECT_EQ(kinds(), (std::vector<std::string>{"job.queued", "runner.left"}));
  EXPECT_EQ(sched.job(o.job)->state, JobState::Queued);
}

TEST_F(SchedulerFeedTest, ABouncedOfferIsNotAnEvent) {
  sched.register_runner("127.0.0.1:8900", now);
  sched.submit(kCommitA, "main", now);
  sched.take_feed();
  auto offer = sched.next_offer(now);
  ASSERT_TRUE(offer);
  sched.offer_refused(*offer, Scheduler::Refusal::Busy, now);
  EXPECT_TRUE(kinds().empty());
}

TEST_F(SchedulerFeedTest, CancellingAQueuedJobTakesItOutOfTheQueueToBeRecorded) {
  sched.submit(kCommitA, "main", now);
  auto id = sched.submit(kCommitB, "main", now).id;
  auto c = sched.cancel(id, "cancelled by request", now);
  EXPECT_EQ(c.change, Scheduler::Change::Done);
  EXPECT_EQ(c.runner, "");
  EXPECT_EQ(sched.queued(), 1u);
  auto to_record = sched.take_gave_up();
  ASSERT_EQ(to_record, std::vector<JobId>{id});
  const Job* job = sched.job(id);
  ASSERT_EQ(job->state, JobState::Finishing);
  EXPECT_EQ(job->outcome->status, TestStatus::Cancelled);
  sched.take_feed();
  sched.finish_result(id, *job->outcome, now, {}, false);
  auto feed = sched.take_feed();
  ASSERT_EQ(feed.size(), 1u);
  EXPECT_EQ(feed[0].kind, EventKind::JobCancelled);
  EXPECT_EQ(feed[0].job.status, TestStatus::Cancelled);
  EXPECT_EQ(feed[0].job.reason, "cancelled by request");
  // Finished: a second cancel does nothing.
  EXPECT_EQ(sched.cancel(id, "again", now).change, Scheduler::Change::NotApplicable);
  EXPECT_EQ(sched.cancel(99, "unknown", now).change, Scheduler::Change::Unknown);
}

TEST_F(SchedulerFeedTest, CancellingARunningJobKeepsItsRunnerBusyUntilTheRunnerStops) {
  sched.register_runner("127.0.0.1:8900", now);
  sched.submit(kCommitA, "main", now);
  sched.submit(kCommitB, "main", now);
  Offer o = offer_and_accept();
  auto c = sched.cancel(o.job, "cancelled by request", now);
  EXPECT_EQ(c.runner, o.runner);
  EXPECT_EQ(c.attempt, o.attempt);
  ASSERT_EQ(sched.take_gave_up(), std::vector<JobId>{o.job});
  sched.finish_result(o.job, *sched.job(o.job)->outcome, now, {}, false);
  // The runner is still stopping the test: no new job for it yet.
  EXPECT_FALSE(sched.can_offer());
  // Its own result, "cancelled", is a duplicate that frees it.
  EXPECT_EQ(sched.check_result(o.job, o.attempt, o.runner), ResultVerdict::Duplicate);
  sched.release_runner(o.runner, o.job, o.attempt, now);
  EXPECT_TRUE(sched.can_offer());
  EXPECT_EQ(sched.job(o.job)->outcome->status, TestStatus::Cancelled);
}

TEST_F(SchedulerFeedTest, ARunnerThatDiesAfterACancelDoesNotBringTheJobBack) {
  sched.register_runner("127.0.0.1:8900", now);
  sched.submit(kCommitA, "main", now);
  Offer o = offer_and_accept();
  sched.cancel(o.job, "cancelled by request", now);
  sched.take_gave_up();
  sched.finish_result(o.job, *sched.job(o.job)->outcome, now, {}, false);
  for (int i = 0; i < 3; ++i)
    for (const auto& t : sched.ping_targets()) sched.ping_missed(t, now);
  EXPECT_EQ(sched.job(o.job)->state, JobState::Finished);
  EXPECT_EQ(sched.queued(), 0u);
}

TEST(SchedulerSupersede, ANewerCommitCancelsOnlyItsBranchsQueuedJobs) {
  Scheduler::Options options{3, 3};
  options.cancel_superseded = true;
  Scheduler sched{options};
  TimePoint now{};
  sched.register_runner("127.0.0.1:8900", now);
  auto running = sched.submit(kCommitA, "main", now).id;
  auto offer = sched.next_offer(now);
  ASSERT_TRUE(offer);
  sched.offer_accepted(*offer, now);
  auto queued = sched.submit(kCommitB, "main", now).id;
  auto other = sched.submit(std::string(40, 'd'), "feature", now).id;
  sched.submit(kCommitC, "main", now);
  EXPECT_EQ(sched.take_gave_up(), std::vector<JobId>{queued});
  EXPECT_EQ(sched.job(queued)->outcome->reason, "superseded by cccccccccccc on main");
  EXPECT_EQ(sched.job(running)->state, JobState::Running);  // running jobs run on
  EXPECT_EQ(sched.job(other)->state, JobState::Queued);
}

TEST(SchedulerSupersede, OffByDefaultEveryCommitIsTested) {
  Scheduler sched{Scheduler::Options{3, 3}};
  TimePoint now{};
  sched.submit(kCommitA, "main", now);
  sched.submit(kCommitB, "main", now);
  EXPECT_TRUE(sched.take_gave_up().empty());
  EXPECT_EQ(sched.queued(), 2u);
}

}  // namespace
}  // namespace ci
