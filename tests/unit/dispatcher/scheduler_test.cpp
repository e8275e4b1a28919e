// The scheduling decisions, driven with a fake clock: no sockets, threads or sleeps.
// One file past the usual ~400 lines: the scheduler is one state machine, and its tests
// are the story of its transitions, read in order on one fixture.
#include "dispatcher/scheduler.h"

#include <gtest/gtest.h>

#include "scheduler_offers.h"

namespace ci {
namespace {

using namespace std::chrono_literals;

const std::string kCommitA(40, 'a');
const std::string kCommitB(40, 'b');
const std::string kCommitC(40, 'c');

class SchedulerTest : public ::testing::Test {
 protected:
  Scheduler sched{Scheduler::Options{3, 3}};
  TimePoint t0{};
  TimePoint now = t0;

  Offer offer_and_accept() { return ci::offer_and_accept(sched, now); }

  void finish(const Offer& o, TestStatus status = TestStatus::Passed) {
    ASSERT_EQ(sched.check_result(o.job, o.attempt, o.runner), ResultVerdict::Accept);
    JobOutcome out;
    out.status = status;
    out.runner = o.runner;
    out.attempt = o.attempt;
    sched.finish_result(o.job, out, now);
  }

  void miss_all_pings(const std::string& runner) {
    for (int i = 0; i < 3; ++i) {
      for (const auto& t : sched.ping_targets())
        if (t.runner == runner) sched.ping_missed(t, now);
    }
  }
};

TEST_F(SchedulerTest, NoOfferWithoutRunnersOrJobs) {
  EXPECT_FALSE(sched.can_offer());
  sched.submit(kCommitA, "master", now);
  EXPECT_FALSE(sched.can_offer());  // queued, waiting for a runner
  EXPECT_EQ(sched.queued(), 1u);
  sched.register_runner("127.0.0.1:8900", now);
  EXPECT_TRUE(sched.can_offer());
}

TEST_F(SchedulerTest, AssignsOldestJobToRunnerIdleLongest) {
  sched.register_runner("r1:1", now);
  now += 1s;
  sched.register_runner("r2:2", now);
  auto a = sched.submit(kCommitA, "master", now).id;
  auto b = sched.submit(kCommitB, "master", now).id;
  auto o1 = offer_and_accept();
  EXPECT_EQ(o1.job, a);
  EXPECT_EQ(o1.runner, "r1:1");
  EXPECT_EQ(o1.attempt, 1u);
  auto o2 = offer_and_accept();
  EXPECT_EQ(o2.job, b);
  EXPECT_EQ(o2.runner, "r2:2");
  EXPECT_FALSE(sched.can_offer());
}

TEST_F(SchedulerTest, SpreadsJobsOverRunnersLeastRecentlyUsedFirst) {
  sched.register_runner("r1:1", now);
  sched.register_runner("r2:2", now);
  std::map<std::string, int> per_runner;
  for (int i = 0; i < 10; ++i) {
    sched.submit(std::string(39, 'a') + static_cast<char>('0' + i), "master", now);
    auto o = offer_and_accept();
    per_runner[o.runner]++;
    finish(o);  // the runner is free again at once: still, the other one goes next
  }
  EXPECT_EQ(per_runner["r1:1"], 5);
  EXPECT_EQ(per_runner["r2:2"], 5);
}

TEST_F(SchedulerTest, SameCommitOnSameBranchIsOneJob) {
  auto first = sched.submit(kCommitA, "master", now);
  auto again = sched.submit(kCommitA, "master", now);
  EXPECT_TRUE(first.created);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(first.id, again.id);
  EXPECT_EQ(sched.queued(), 1u);
  auto other_branch = sched.submit(kCommitA, "feature", now);
  EXPECT_TRUE(other_branch.created);
}

TEST_F(SchedulerTest, BusyRunnerGetsNoJobUntilItSaysIdle) {
  sched.register_runner("r1:1", now);
  auto id = sched.submit(kCommitA, "master", now).id;
  auto offer = sched.next_offer(now);
  ASSERT_TRUE(offer);
  sched.offer_refused(*offer, Scheduler::Refusal::Busy, now);
  EXPECT_EQ(sched.job(id)->state, JobState::Queued);
  EXPECT_EQ(sched.runners().at("r1:1").state, RunnerState::BusyUnknown);
  EXPECT_FALSE(sched.can_offer());
  // Its pong says it is idle now.
  sched.ping_answered(sched.ping_targets()[0], RunnerReport{true, false, 0, 0}, now);
  EXPECT_TRUE(sched.can_offer());
  auto retry = sched.next_offer(now);
  ASSERT_TRUE(retry);
  EXPECT_EQ(retry->job, id);
  EXPECT_EQ(retry->attempt, 1u);  // a refused offer is not an attempt
}

TEST_F(SchedulerTest, DeadRunnerIsDroppedAfterKMissesNotOne) {
  sched.register_runner("r1:1", now);
  auto target = sched.ping_targets()[0];
  sched.ping_missed(target, now);
  sched.ping_missed(target, now);
  EXPECT_EQ(sched.runners().size(), 1u);
  // An answer resets the count: one slow answer never drops a runner.
  sched.ping_answered(target, RunnerReport{true, false, 0, 0}, now);
  sched.ping_missed(target, now);
  sched.ping_missed(target, now);
  EXPECT_EQ(sched.runners().size(), 1u);
  sched.ping_missed(target, now);
  EXPECT_EQ(sched.runners().size(), 0u);
}

TEST_F(SchedulerTest, DeadRunnersJobGoesToAnotherRunner) {
  sched.register_runner("r1:1", now);
  auto id = sched.submit(kCommitA, "master", now).id;
  auto first = offer_and_accept();
  EXPECT_EQ(first.runner, "r1:1");
  sched.register_runner("r2:2", now);
  miss_all_pings("r1:1");
  EXPECT_EQ(sched.runners().count("r1:1"), 0u);
  EXPECT_EQ(sched.job(id)->state, JobState::Queued);
  auto second = offer_and_accept();
  EXPECT_EQ(second.job, id);
  EXPECT_EQ(second.runner, "r2:2");
  EXPECT_EQ(second.attempt, 2u);
}

TEST_F(SchedulerTest, DeadRunnersJobWaitsForANewRunner) {
  sched.register_runner("r1:1", now);
  auto id = sched.submit(kCommitA, "master", now).id;
  offer_and_accept();
  miss_all_pings("r1:1");
  EXPECT_EQ(sched.job(id)->state, JobState::Queued);
  EXPECT_FALSE(sched.can_offer());
  now += 10min;
  sched.register_runner("r3:3", now);
  auto o = offer_and_accept();
  EXPECT_EQ(o.job, id);
  EXPECT_EQ(o.runner, "r3:3");
}

TEST_F(SchedulerTest, RequeuedJobGoesBeforeNewerOnes) {
  sched.register_runner("r1:1", now);
  auto a = sched.submit(kCommitA, "master", now).id;
  offer_and_accept();
  sched.submit(kCommitB, "master", now);
  miss_all_pings("r1:1");
  sched.register_runner("r2:2", now);
  EXPECT_EQ(offer_and_accept().job, a);
}

TEST_F(SchedulerTest, UnreachableRunnerOnRuntestGetsNoMoreJobsUntilItAnswers) {
  sched.register_runner("r1:1", now);
  sched.register_runner("r2:2", now);
  auto id = sched.submit(kCommitA, "master", now).id;
  auto offer = sched.next_offer(now);
  ASSERT_TRUE(offer);
  sched.offer_refused(*offer, Scheduler::Refusal::Unreachable, now);
  auto next = sched.next_offer(now);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->job, id);
  EXPECT_NE(next->runner, offer->runner);
}

TEST_F(SchedulerTest, RunnerThatForgotItsJobLosesIt) {
  sched.register_runner("r1:1", now);
  auto id = sched.submit(kCommitA, "master", now).id;
  auto o = offer_and_accept();
  // A ping sent before the assignment is stale: it changes nothing.
  // A ping sent after it that says "idle" means the runner lost the job (restarted).
  auto target = sched.ping_targets()[0];
  sched.ping_answered(target, RunnerReport{true, false, 0, 0}, now);
  EXPECT_EQ(sched.job(id)->state, JobState::Queued);
  EXPECT_EQ(sched.job(id)->infra_failures, 1u);
  (void)o;
}

TEST_F(SchedulerTest, StalePongIsIgnored) {
  sched.register_runner("r1:1", now);
  auto before = sched.ping_targets()[0];
  auto id = sched.submit(kCommitA, "master", now).id;
  offer_and_accept();
  sched.ping_answered(before, RunnerReport{true, false, 0, 0}, now);
  EXPECT_EQ(sched.job(id)->state, JobState::Running);
}

TEST_F(SchedulerTest, ExactlyOneResultPerJob) {
  sched.register_runner("r1:1", now);
  sched.submit(kCommitA, "master", now);
  auto o = offer_and_accept();
  finish(o);
  EXPECT_EQ(sched.check_result(o.job, o.attempt, o.runner), ResultVerdict::Duplicate);
  EXPECT_EQ(sched.check_result(999, 1, o.runner), ResultVerdict::UnknownJob);
  EXPECT_EQ(sched.check_result(o.job, o.attempt, "intruder:1"), ResultVerdict::WrongRunner);
  EXPECT_EQ(sched.check_result(o.job, 7, o.runner), ResultVerdict::WrongRunner);
}

TEST_F(SchedulerTest, LateResultOfEarlierAttemptFinishesTheJobOnce) {
  sched.register_runner("r1:1", now);
  auto id = sched.submit(kCommitA, "master", now).id;
  auto first = offer_and_accept();
  miss_all_pings("r1:1");  // presumed dead, but it was only slow
  sched.register_runner("r2:2", now);
  auto second = offer_and_accept();
  EXPECT_EQ(second.attempt, 2u);
  // The first runner's result arrives after all: recorded, since there is none yet.
  finish(first);
  EXPECT_EQ(sched.job(id)->state, JobState::Finished);
  EXPECT_EQ(sched.job(id)->outcome->attempt, 1u);
  // The second attempt's result is then a duplicate, and frees its runner.
  EXPECT_EQ(sched.check_result(id, second.attempt, second.runner), ResultVerdict::Duplicate);
  sched.release_runner(second.runner, id, second.attempt, now);
  EXPECT_EQ(sched.runners().at("r2:2").state, RunnerState::Idle);
}

TEST_F(SchedulerTest, ResultThatCannotBeRecordedKeepsTheJob) {
  sched.register_runner("r1:1", now);
  auto id = sched.submit(kCommitA, "master", now).id;
  auto o = offer_and_accept();
  ASSERT_EQ(sched.check_result(o.job, o.attempt, o.runner), ResultVerdict::Accept);
  EXPECT_EQ(sched.check_result(o.job, o.attempt, o.runner), ResultVerdict::Duplicate);
  sched.abandon_result(id, now);
  EXPECT_EQ(sched.job(id)->state, JobState::Running);
  EXPECT_EQ(sched.check_result(o.job, o.attempt, o.runner), ResultVerdict::Accept);
}

TEST_F(SchedulerTest, JobLostOnMaxAttemptsRunnersEndsAsError) {
  auto id = sched.submit(kCommitA, "master", now).id;
  for (int i = 0; i < 3; ++i) {
    std::string r = "r" + std::to_string(i) + ":1";
    sched.register_runner(r, now);
    offer_and_accept();
    miss_all_pings(r);
  }
  auto gave_up = sched.take_gave_up();
  ASSERT_EQ(gave_up.size(), 1u);
  EXPECT_EQ(gave_up[0], id);
  const Job* job = sched.job(id);
  ASSERT_TRUE(job->outcome);
  EXPECT_EQ(job->outcome->status, TestStatus::Error);
  EXPECT_NE(job->outcome->reason.find("3 attempts"), std::string::npos);
  sched.finish_result(id, *job->outcome, now);
  EXPECT_EQ(sched.job(id)->state, JobState::Finished);
  EXPECT_EQ(sched.queued(), 0u);
}

TEST_F(SchedulerTest, ReregistrationOfKnownRunnerKeepsItsJob) {
  sched.register_runner("r1:1", now);
  auto id = sched.submit(kCommitA, "master", now).id;
  offer_and_accept();
  EXPECT_FALSE(sched.register_runner("r1:1", now));
  EXPECT_EQ(sched.job(id)->state, JobState::Running);
  EXPECT_EQ(sched.runners().at("r1:1").state, RunnerState::Running);
}

TEST_F(SchedulerTest, DecisionsAreLogged) {
  sched.register_runner("r1:1", now);
  sched.submit(kCommitC, "dev", now);
  offer_and_accept();
  auto events = sched.take_events();
  ASSERT_GE(events.size(), 3u);
  EXPECT_NE(events.back().text.find(kCommitC), std::string::npos);
  EXPECT_NE(events.back().text.find("r1:1"), std::string::npos);
  EXPECT_TRUE(sched.take_events().empty());
}

}  // namespace
}  // namespace ci

namespace ci {
namespace {

// What a restarted dispatcher does with what its store had.
TEST_F(SchedulerTest, RunnersHeardFromSinceTheLastRoundAreNotPinged) {
  sched.register_runner("r1:1", now);
  sched.register_runner("r2:2", now);
  sched.submit(kCommitA, "master", now);
  now += 1s;
  Offer o = offer_and_accept();  // one runner speaks at 1 s
  now += 500ms;
  // Heard from since 1 s ago: only the other one, silent since it registered, is pinged.
  auto targets = sched.ping_targets(now - 1s);
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_NE(targets[0].runner, o.runner);
  // With everyone silent for longer than that, everyone is pinged again.
  now += 2s;
  EXPECT_EQ(sched.ping_targets(now - 1s).size(), 2u);
}

TEST_F(SchedulerTest, ARunnerWithARuntestOnItsWayIsNotPinged) {
  sched.register_runner("r1:1", now);
  sched.submit(kCommitA, "master", now);
  ASSERT_TRUE(sched.next_offer(now));
  EXPECT_TRUE(sched.ping_targets().empty());
}

class RestoreTest : public ::testing::Test {
 protected:
  Scheduler before{Scheduler::Options{3, 3}};
  Scheduler after{Scheduler::Options{3, 3}};
  TimePoint now{};

  // Moves everything `before` wrote to the store into `after`, as a restart would.
  void restart() {
    before.take_dirty();
    std::vector<Job> jobs;
    for (const auto& [id, j] : before.jobs()) jobs.push_back(j);
    std::vector<StoredRunner> runners;
    for (const auto& [addr, r] : before.runners())
      if (r.slot == 0) runners.push_back({r.address, r.spec});
    after.restore(jobs, runners, now);
  }
};

TEST_F(RestoreTest, QueuedJobsComeBackInOrderAndRunnersArePingedFirst) {
  auto a = before.submit(std::string(40, 'a'), "master", now).id;
  auto b = before.submit(std::string(40, 'b'), "master", now).id;
  before.register_runner("r1:1", now);
  before.unregister_runner("r1:1", now);
  before.register_runner("r2:2", now);
  restart();
  EXPECT_EQ(after.queued(), 2u);
  // A restored runner gets no job before it has answered a ping.
  EXPECT_FALSE(after.can_offer());
  after.ping_answered(after.ping_targets()[0], RunnerReport{true, false, 0, 0}, now);
  auto o = after.next_offer(now);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->job, a);
  EXPECT_EQ(o->runner, "r2:2");
  (void)b;
  // New jobs get new ids, and known commits are still known.
  EXPECT_FALSE(after.submit(std::string(40, 'a'), "master", now).created);
  EXPECT_GT(after.submit(std::string(40, 'c'), "master", now).id, b);
}

TEST_F(RestoreTest, RunningJobStaysWithARunnerThatStillHasIt) {
  before.register_runner("r1:1", now);
  auto id = before.submit(std::string(40, 'a'), "master", now).id;
  auto o = before.next_offer(now);
  before.offer_accepted(*o, now);
  restart();
  EXPECT_EQ(after.job(id)->state, JobState::Running);
  after.ping_answered(after.ping_targets()[0], RunnerReport{true, true, id, 1}, now);
  EXPECT_EQ(after.job(id)->state, JobState::Running);
  EXPECT_EQ(after.check_result(id, 1, "r1:1"), ResultVerdict::Accept);
}

TEST_F(RestoreTest, RunningJobWhoseRunnerNeverComesBackIsRequeued) {
  before.register_runner("r1:1", now);
  auto id = before.submit(std::string(40, 'a'), "master", now).id;
  before.offer_accepted(*before.next_offer(now), now);
  restart();
  for (int i = 0; i < 3; ++i) after.ping_missed(after.ping_targets()[0], now);
  EXPECT_EQ(after.job(id)->state, JobState::Queued);
  after.register_runner("r9:9", now);
  auto o = after.next_offer(now);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->attempt, 2u);
}

TEST_F(RestoreTest, OfferedJobStaysWithItsRunnerWhileItSaysItHasIt) {
  before.register_runner("r1:1", now);
  auto id = before.submit(std::string(40, 'a'), "master", now).id;
  ASSERT_TRUE(before.next_offer(now));  // crash before the runner's OK was written
  restart();
  EXPECT_EQ(after.job(id)->state, JobState::Running);
  EXPECT_EQ(after.queued(), 0u);
  // The runtest did reach it: its pong keeps the job with it, and its result counts.
  auto targets = after.ping_targets();
  ASSERT_EQ(targets.size(), 1u);
  after.ping_answered(targets[0], RunnerReport{true, true, id, 1}, now);
  EXPECT_EQ(after.job(id)->state, JobState::Running);
  EXPECT_EQ(after.check_result(id, 1, "r1:1"), ResultVerdict::Accept);
}

TEST_F(RestoreTest, OfferedJobThatNeverReachedItsRunnerIsQueuedAgain) {
  before.register_runner("r1:1", now);
  auto id = before.submit(std::string(40, 'a'), "master", now).id;
  ASSERT_TRUE(before.next_offer(now));
  restart();
  auto targets = after.ping_targets();
  ASSERT_EQ(targets.size(), 1u);
  after.ping_answered(targets[0], RunnerReport{true, false, 0, 0}, now);
  EXPECT_EQ(after.job(id)->state, JobState::Queued);
  EXPECT_EQ(after.queued(), 1u);
  // It never ran: not an attempt lost to infrastructure.
  EXPECT_EQ(after.job(id)->infra_failures, 0u);
}

TEST_F(RestoreTest, FinishedJobsKeepTheirResults) {
  before.register_runner("r1:1", now);
  auto id = before.submit(std::string(40, 'a'), "master", now).id;
  auto o = before.next_offer(now);
  before.offer_accepted(*o, now);
  ASSERT_EQ(before.check_result(id, 1, "r1:1"), ResultVerdict::Accept);
  JobOutcome out;
  out.status = TestStatus::Passed;
  out.runner = "r1:1";
  out.attempt = 1;
  before.finish_result(id, out, now);
  restart();
  EXPECT_EQ(after.job(id)->state, JobState::Finished);
  EXPECT_EQ(after.check_result(id, 1, "r1:1"), ResultVerdict::Duplicate);
  EXPECT_EQ(after.queued(), 0u);
}

TEST(SchedulerDirty, EveryChangeIsReportedForTheStore) {
  Scheduler s{Scheduler::Options{3, 3}};
  TimePoint now{};
  auto id = s.submit(std::string(40, 'a'), "master", now).id;
  s.register_runner("r1:1", now);
  auto d = s.take_dirty();
  EXPECT_EQ(d.jobs, std::vector<JobId>{id});
  EXPECT_EQ(d.runners_added, std::vector<StoredRunner>{"r1:1"});
  EXPECT_TRUE(s.take_dirty().empty());
  auto o = s.next_offer(now);
  EXPECT_EQ(s.take_dirty().jobs, std::vector<JobId>{id});  // the attempt, before runtest
  s.offer_accepted(*o, now);
  EXPECT_EQ(s.take_dirty().jobs, std::vector<JobId>{id});
  s.unregister_runner("r1:1", now);
  d = s.take_dirty();
  EXPECT_EQ(d.runners_removed, std::vector<std::string>{"r1:1"});
  EXPECT_EQ(d.jobs, std::vector<JobId>{id});  // requeued
  // A failed write is retried with the next one.
  s.register_runner("r2:2", now);
  auto failed = s.take_dirty();
  s.return_dirty(failed);
  EXPECT_EQ(s.take_dirty().runners_added, std::vector<StoredRunner>{"r2:2"});
}

}  // namespace
}  // namespace ci

namespace ci {
namespace {

TEST(SchedulerRaces, LateResultWhileTheNextAttemptIsOfferedFinishesTheJobOnce) {
  Scheduler s{Scheduler::Options{3, 3}};
  TimePoint now{};
  s.register_runner("r1:1", now);
  auto id = s.submit(std::string(40, 'a'), "master", now).id;
  auto first = s.next_offer(now);
  s.offer_accepted(*first, now);
  for (int i = 0; i < 3; ++i) s.ping_missed(s.ping_targets()[0], now);  // r1 presumed dead
  s.register_runner("r2:2", now);
  auto second = s.next_offer(now);  // in flight to r2...
  ASSERT_TRUE(second);
  // ...when r1's late result arrives.
  ASSERT_EQ(s.check_result(id, 1, "r1:1"), ResultVerdict::Accept);
  JobOutcome out;
  out.runner = "r1:1";
  out.attempt = 1;
  s.finish_result(id, out, now);
  s.offer_accepted(*second, now);  // r2 took it after all
  EXPECT_EQ(s.job(id)->state, JobState::Finished);
  EXPECT_EQ(s.check_result(id, 2, "r2:2"), ResultVerdict::Duplicate);
  s.release_runner("r2:2", id, 2, now);
  EXPECT_EQ(s.runners().at("r2:2").state, RunnerState::Idle);
  EXPECT_EQ(s.queued(), 0u);
}

TEST(SchedulerRaces, LateResultForARequeuedJobTakesItOutOfTheQueue) {
  Scheduler s{Scheduler::Options{3, 3}};
  TimePoint now{};
  s.register_runner("r1:1", now);
  auto id = s.submit(std::string(40, 'a'), "master", now).id;
  s.offer_accepted(*s.next_offer(now), now);
  for (int i = 0; i < 3; ++i) s.ping_missed(s.ping_targets()[0], now);
  ASSERT_EQ(s.queued(), 1u);
  ASSERT_EQ(s.check_result(id, 1, "r1:1"), ResultVerdict::Accept);
  EXPECT_EQ(s.queued(), 0u);
  s.abandon_result(id, now);  // recording failed: back in the queue
  EXPECT_EQ(s.queued(), 1u);
}

}  // namespace
}  // namespace ci

namespace ci {
namespace {

TEST(SchedulerRaces, ResultBeforeTheRuntestOkFreesTheRunnerAtOnce) {
  Scheduler s{Scheduler::Options{3, 3}};
  TimePoint now{};
  s.register_runner("r1:1", now);
  auto id = s.submit(std::string(40, 'a'), "master", now).id;
  s.submit(std::string(40, 'b'), "master", now);
  auto offer = s.next_offer(now);
  // The runner ran the job and reported before the dispatcher saw its OK.
  ASSERT_EQ(s.check_result(id, 1, "r1:1"), ResultVerdict::Accept);
  JobOutcome out;
  out.runner = "r1:1";
  out.attempt = 1;
  s.finish_result(id, out, now);
  s.offer_accepted(*offer, now);
  EXPECT_EQ(s.job(id)->state, JobState::Finished);
  EXPECT_EQ(s.runners().at("r1:1").state, RunnerState::Idle);
  EXPECT_TRUE(s.can_offer());  // the next job goes now, not after a heartbeat
}

TEST(SchedulerRaces, PongSentBeforeTheRuntestArrivedDoesNotLoseTheJob) {
  Scheduler s{Scheduler::Options{3, 3}};
  TimePoint now{};
  s.register_runner("r1:1", now);
  auto id = s.submit(std::string(40, 'a'), "master", now).id;
  auto targets = s.ping_targets();  // pinged; the offer goes while the ping is in flight
  ASSERT_EQ(targets.size(), 1u);
  auto target = targets[0];
  auto offer = s.next_offer(now);
  ASSERT_TRUE(offer);
  s.offer_accepted(*offer, now);
  s.ping_answered(target, RunnerReport{true, false, 0, 0}, now);  // "idle", from before
  EXPECT_EQ(s.job(id)->state, JobState::Running);
  EXPECT_EQ(s.job(id)->infra_failures, 0u);
}

}  // namespace
}  // namespace ci
