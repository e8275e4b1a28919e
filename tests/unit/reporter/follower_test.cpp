// The feed follower on its own: a read model rebuilt from snapshot pages when it fell
// behind the feed's retention (and when it starts empty after the feed was trimmed),
// then followed; a dispatcher that is down is tried again on the clock's backoff.
#include <gtest/gtest.h>

#include "fake_feed.h"
#include "reporter/feed_follower.h"
#include "reporter/queries.h"
#include "test_support.h"

namespace ci::reporter {
namespace {

using namespace test_peer;
using namespace std::chrono_literals;

class FollowerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (follower) follower->stop();
    feed.stop();
  }

  void open_model() {
    auto m = ReadModel::open(path, {});
    ASSERT_TRUE(m.ok()) << m.error();
    model = std::move(*m);
    auto q = Queries::open(path);
    ASSERT_TRUE(q.ok()) << q.error();
    queries = std::move(*q);
  }

  void follow(uint16_t port, Clock* clock = &Clock::real()) {
    FollowerOptions o;
    o.host = "127.0.0.1";
    o.port = port;
    o.wait = 200ms;
    o.snapshot_page = 2;  // several pages
    o.retry_initial = 1s;
    o.retry_max = 4s;
    o.clock = clock;
    FollowerListener listener;
    listener.rebuilt = [this](uint64_t seq) { rebuilt_at = seq; };
    follower = std::make_unique<FeedFollower>(o, *model, listener);
    follower->start();
  }

  std::optional<JobInfo> job(JobId id) {
    auto j = queries->job(id);
    return j.ok() ? *j : std::nullopt;
  }

  test::TempDir dir;
  std::string path = dir / "reporter.db";
  FakeFeed feed;
  std::unique_ptr<ReadModel> model;
  std::unique_ptr<Queries> queries;
  std::unique_ptr<FeedFollower> follower;
  std::atomic<uint64_t> rebuilt_at{0};
};

TEST_F(FollowerTest, AnEmptyReadModelBehindATrimmedFeedIsRebuiltFromSnapshots) {
  feed.start();
  for (JobId id = 1; id <= 5; ++id) {
    JobInfo j = make_job(id, "c" + std::to_string(id), "master", "finished");
    j.status = TestStatus::Failed;
    j.attempt = 1;
    feed.add(finished(j, {test_case("t.a", CaseOutcome::Failed)}));
  }
  feed.trim(4);  // events 1-4 are gone: only a snapshot has jobs 1-4
  RunnerRow busy{"127.0.0.1:8900", "running", 5, 1, 3, 0};
  RunnerRow idle{"127.0.0.1:8901", "idle", 0, 0, 2, 0};
  feed.set_runners({busy, idle});
  open_model();
  follow(feed.port());
  ASSERT_TRUE(test::wait_until([&] { return follower->rebuilds() == 1; }));
  EXPECT_EQ(rebuilt_at.load(), 5u);
  for (JobId id = 1; id <= 5; ++id) {
    auto j = job(id);
    ASSERT_TRUE(j) << id;
    EXPECT_EQ(j->state, "finished");
    auto tests = queries->tests(*j, 1);
    ASSERT_TRUE(tests.ok());
    EXPECT_EQ((*tests)["cases"].size(), 1u) << id;
  }
  EXPECT_EQ(*model->last_seq(), 5u);
  auto runners = queries->runners();
  ASSERT_TRUE(runners.ok());
  ASSERT_EQ(runners->size(), 2u);
  EXPECT_EQ((*runners)[0]["state"], "busy");
  EXPECT_EQ((*runners)[0]["job"], 5);
  EXPECT_EQ((*runners)[1]["state"], "idle");
  // Then it follows the feed.
  feed.add(job_event(EventKind::JobQueued, make_job(6, "c6", "master", "queued")));
  ASSERT_TRUE(test::wait_until([&] { return job(6).has_value(); }));
  EXPECT_EQ(follower->rebuilds(), 1u);
}

TEST_F(FollowerTest, AReadModelThatFellBehindTheRetentionIsRebuilt) {
  feed.start();
  open_model();
  follow(feed.port());
  feed.add(job_event(EventKind::JobQueued, make_job(1, "c1", "master", "queued")));
  ASSERT_TRUE(test::wait_until([&] { return job(1).has_value(); }));
  follower->stop();
  // While it is away the job runs and finishes, and the feed forgets how.
  JobInfo j = make_job(1, "c1", "master", "finished");
  j.status = TestStatus::Passed;
  j.attempt = 1;
  feed.add(job_event(EventKind::JobStarted, make_job(1, "c1", "master", "running")));
  feed.add(finished(j, {test_case("t.a", CaseOutcome::Passed)}));
  feed.add(job_event(EventKind::JobQueued, make_job(2, "c2", "master", "queued")));
  feed.trim(3);
  follow(feed.port());
  ASSERT_TRUE(test::wait_until([&] { return follower->rebuilds() == 1 && job(2).has_value(); }));
  EXPECT_EQ(job(1)->status, TestStatus::Passed);
  EXPECT_EQ(*model->last_seq(), 4u);
}

TEST_F(FollowerTest, ADispatcherThatIsDownIsTriedAgainOnTheClock) {
  FakeClock clock;
  test::HeldPort held;  // the dispatcher comes later, on this port
  uint16_t port = held.port();
  open_model();
  follow(port, &clock);
  // It failed once and sleeps for the first backoff, on the fake clock.
  ASSERT_TRUE(test::wait_until([&] { return clock.waiters() == 1; }));
  EXPECT_FALSE(follower->connected());
  feed.start(port);
  feed.add(job_event(EventKind::JobQueued, make_job(1, "c1", "master", "queued")));
  clock.advance(999ms);
  EXPECT_FALSE(job(1).has_value());  // not before its time
  clock.advance(1ms);
  ASSERT_TRUE(test::wait_until([&] { return job(1).has_value(); }));
  // Connected is noted once the call that brought the job has returned: wait for it.
  EXPECT_TRUE(test::wait_until([&] { return follower->connected(); }));
}

}  // namespace
}  // namespace ci::reporter
