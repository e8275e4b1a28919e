// The attempts that end without a result of theirs, as the scheduler names them for
// their logs to be finished: given back, lost with a runner that died, forgot it, left
// or has fewer slots, a job offered again as a new attempt; not an offer refused, whose
// number the next offer takes again.
#include <gtest/gtest.h>

#include <set>
#include <utility>

#include "dispatcher/scheduler.h"
#include "scheduler_offers.h"

namespace ci {
namespace {

const std::string kCommitA(40, 'a');
const std::string kCommitB(40, 'b');

using Attempt = std::pair<JobId, uint32_t>;

class SchedulerEnded : public ::testing::Test {
 protected:
  Scheduler sched{Scheduler::Options{3, 5}};
  TimePoint now{};

  Offer offer_and_accept() { return ci::offer_and_accept(sched, now); }
  // The attempts named since the last call, each once.
  std::set<Attempt> ended() {
    auto list = sched.take_ended_attempts();
    return {list.begin(), list.end()};
  }
  PingTarget target_of(const std::string& runner) {
    for (const auto& t : sched.ping_targets())
      if (t.runner == runner) return t;
    ADD_FAILURE() << "no ping target " << runner;
    return {};
  }
};

TEST_F(SchedulerEnded, EachWayARunnerLosesItsAttemptNamesIt) {
  auto id = sched.submit(kCommitA, "main", now).id;
  sched.register_runner("r1:1", now);
  auto o1 = offer_and_accept();
  EXPECT_EQ(ended(), std::set<Attempt>{});

  // Given back by a stopping runner.
  ASSERT_EQ(sched.abandon(id, o1.attempt, "r1:1", now), Scheduler::Change::Done);
  EXPECT_EQ(ended(), (std::set<Attempt>{{id, 1}}));

  // Forgotten by a runner that restarted: its pong says idle.
  sched.register_runner("r2:2", now);
  auto o2 = offer_and_accept();
  ASSERT_EQ(o2.attempt, 2u);
  EXPECT_EQ(ended(), (std::set<Attempt>{{id, 1}}));  // the one before, named again
  sched.ping_answered(target_of("r2:2"), RunnerReport{true, false, 0, 0}, now);
  EXPECT_EQ(sched.job(id)->state, JobState::Queued);
  EXPECT_EQ(ended(), (std::set<Attempt>{{id, 2}}));

  // Its runner dropped after missed pings.
  auto o3 = offer_and_accept();
  ASSERT_EQ(o3.runner, "r2:2");
  ended();
  for (int i = 0; i < 3; ++i) sched.ping_missed(target_of("r2:2"), now);
  EXPECT_EQ(sched.job(id)->state, JobState::Queued);
  EXPECT_EQ(ended(), (std::set<Attempt>{{id, 3}}));

  // Its runner left on purpose.
  sched.register_runner("r3:3", now);
  auto o4 = offer_and_accept();
  ended();
  ASSERT_TRUE(sched.unregister_runner(o4.runner, now));
  EXPECT_EQ(ended(), (std::set<Attempt>{{id, 4}}));

  // Its slot gone: the runner registered again with fewer slots.
  RunnerSpec two;
  two.slots = 2;
  sched.register_runner("r4:4", now, two);
  auto filler = sched.submit(kCommitB, "main", now).id;
  auto first = offer_and_accept();
  auto second = offer_and_accept();
  ended();
  sched.register_runner("r4:4", now, RunnerSpec{});
  std::set<Attempt> lost = ended();
  ASSERT_EQ(lost.size(), 1u);
  const Offer& dropped = first.slot == "r4:4#1" ? first : second;
  EXPECT_EQ(*lost.begin(), Attempt(dropped.job, dropped.attempt));
  (void)filler;
}

TEST_F(SchedulerEnded, ARefusedOfferIsNotNamedItsNumberIsTakenAgain) {
  auto id = sched.submit(kCommitA, "main", now).id;
  sched.register_runner("r1:1", now);
  auto offer = sched.next_offer(now);
  ASSERT_TRUE(offer);
  sched.offer_refused(*offer, Scheduler::Refusal::Busy, now);
  EXPECT_EQ(ended(), std::set<Attempt>{});
  sched.ping_answered(target_of("r1:1"), RunnerReport{true, false, 0, 0}, now);
  auto again = offer_and_accept();
  EXPECT_EQ(again.job, id);
  EXPECT_EQ(again.attempt, 1u);
  EXPECT_EQ(ended(), std::set<Attempt>{});
}

// The runner leaves while its offer is on the way: the offer's answer decides. Refused,
// the attempt's number is taken again by the next offer, whose log must not be finished
// before it starts; accepted by a runner gone meanwhile, the attempt is over.
TEST_F(SchedulerEnded, ARunnerGoneWithItsOfferOnTheWayLeavesItToTheOffersAnswer) {
  auto id = sched.submit(kCommitA, "main", now).id;
  sched.register_runner("r1:1", now);
  auto refused = sched.next_offer(now);
  ASSERT_TRUE(refused);
  ASSERT_TRUE(sched.unregister_runner("r1:1", now));
  sched.offer_refused(*refused, Scheduler::Refusal::Unreachable, now);
  EXPECT_EQ(ended(), std::set<Attempt>{});
  sched.register_runner("r2:2", now);
  auto again = offer_and_accept();
  EXPECT_EQ(again.job, id);
  EXPECT_EQ(again.attempt, refused->attempt);
  EXPECT_EQ(ended(), std::set<Attempt>{});

  auto other = sched.submit(kCommitB, "main", now).id;
  sched.register_runner("r3:3", now);
  auto accepted = sched.next_offer(now);
  ASSERT_TRUE(accepted);
  ASSERT_EQ(accepted->job, other);
  ASSERT_TRUE(sched.unregister_runner("r3:3", now));
  sched.offer_accepted(*accepted, now);
  EXPECT_EQ(ended(), (std::set<Attempt>{{other, accepted->attempt}}));
}

TEST_F(SchedulerEnded, AResultEndsItsOwnAttemptACancelledRunnerThatForgetsItNamesIt) {
  auto id = sched.submit(kCommitA, "main", now).id;
  sched.register_runner("r1:1", now);
  auto o = offer_and_accept();
  // Cancelled while running: the runner is told to stop, and its own result or its
  // loss ends the attempt; the cancel does not.
  ASSERT_EQ(sched.cancel(id, "cancelled by request", now).change, Scheduler::Change::Done);
  ASSERT_EQ(sched.take_gave_up(), std::vector<JobId>{id});
  sched.finish_result(id, *sched.job(id)->outcome, now, {}, false);
  EXPECT_EQ(ended(), std::set<Attempt>{});
  // It restarted and forgot the job: the attempt ended without a result.
  sched.ping_answered(target_of("r1:1"), RunnerReport{true, false, 0, 0}, now);
  EXPECT_EQ(ended(), (std::set<Attempt>{{id, o.attempt}}));
  EXPECT_EQ(sched.job(id)->state, JobState::Finished);

  // A result: the caller finishes that attempt's log itself.
  auto other = sched.submit(kCommitB, "main", now).id;
  auto o2 = offer_and_accept();
  ASSERT_EQ(sched.check_result(other, o2.attempt, o2.runner), ResultVerdict::Accept);
  JobOutcome out;
  out.status = TestStatus::Passed;
  out.runner = o2.runner;
  out.attempt = o2.attempt;
  sched.finish_result(other, out, now);
  EXPECT_EQ(ended(), std::set<Attempt>{});
  // Run again: the attempt before is named when the new one is offered.
  ASSERT_EQ(sched.retry(other, now), Scheduler::Change::Done);
  auto o3 = offer_and_accept();
  EXPECT_EQ(o3.attempt, 2u);
  EXPECT_EQ(ended(), (std::set<Attempt>{{other, 1}}));
}

TEST_F(SchedulerEnded, AJobRequeuedBeforeARestartHasItsLastAttemptNamedOnRestore) {
  auto id = sched.submit(kCommitA, "main", now).id;
  sched.register_runner("r1:1", now);
  auto o = offer_and_accept();
  ASSERT_EQ(sched.abandon(id, o.attempt, "r1:1", now), Scheduler::Change::Done);
  std::vector<Job> jobs;
  for (const auto& [job_id, job] : sched.jobs()) jobs.push_back(job);
  Scheduler after{Scheduler::Options{3, 5}};
  after.restore(jobs, {}, now);
  auto named = after.take_ended_attempts();
  EXPECT_EQ(named, (std::vector<Attempt>{{id, 1}}));
  // A queued job never offered has none.
  Scheduler fresh{Scheduler::Options{3, 5}};
  fresh.submit(kCommitB, "main", now);
  std::vector<Job> never;
  for (const auto& [job_id, job] : fresh.jobs()) never.push_back(job);
  Scheduler restored{Scheduler::Options{3, 5}};
  restored.restore(never, {}, now);
  EXPECT_TRUE(restored.take_ended_attempts().empty());
}

}  // namespace
}  // namespace ci
