// The observer's interval on a FakeClock: a round runs when the clock passes the
// interval or a poke comes, never before; what the dispatcher refused is retried in the
// round after the interval. Time moves only when a test advances it.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ci/clock.h"
#include "fake_dispatcher.h"
#include "observer/observer.h"
#include "test_support.h"

namespace ci::observer {
namespace {

using namespace std::chrono_literals;
using ci::test::commit_file;
using ci::test::wait_until;

constexpr auto kInterval = 10s;

class ObserverClockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    master_ = tmp_ / "master";
    base_ = ci::test::make_master_repo(master_);
    clone_ = ci::test::clone_repo(master_, tmp_ / "clone");
    ASSERT_TRUE(dispatcher_.start());
  }

  // Started, its first round (the first look) done, and asleep until the interval.
  std::unique_ptr<Observer> start() {
    ObserverOptions o;
    o.repo = clone_;
    o.dispatcher = {"127.0.0.1", dispatcher_.port()};
    o.interval = kInterval;
    o.clock = &clock_;
    o.client.connect_timeout = 2000ms;
    o.client.io_timeout = 5000ms;
    auto observer = std::make_unique<Observer>(o);
    auto r = observer->start();
    EXPECT_TRUE(r.ok()) << r.error();
    EXPECT_TRUE(asleep_after(*observer, 1));
    return observer;
  }

  // True once `rounds` rounds are done and the loop waits on the clock for the next.
  bool asleep_after(const Observer& observer, uint64_t rounds) {
    return wait_until(
        [&] { return observer.rounds_completed() >= rounds && clock_.waiters() == 1; });
  }

  ci::test::TempDir tmp_;
  std::string master_;
  std::string base_;  // the master's first commit
  std::string clone_;
  test::FakeDispatcher dispatcher_;
  FakeClock clock_;
};

TEST_F(ObserverClockTest, ANewCommitIsPickedUpOnlyOnceTheIntervalHasPassed) {
  auto observer = start();
  std::string c1 = commit_file(master_, "a.txt", "1");

  // Short of the interval: the loop is not woken (a spurious wake goes back to sleep).
  clock_.advance(kInterval - 1ms);
  EXPECT_EQ(observer->rounds_completed(), 1u);
  ASSERT_TRUE(asleep_after(*observer, 1));
  EXPECT_EQ(observer->rounds_completed(), 1u);
  EXPECT_TRUE(dispatcher_.dispatches().empty());

  clock_.advance(1ms);
  ASSERT_TRUE(wait_until([&] { return dispatcher_.dispatches().size() == 1; }));
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1}));
  ASSERT_TRUE(asleep_after(*observer, 2));
  EXPECT_EQ(observer->handed_over().at("master"), c1);
}

TEST_F(ObserverClockTest, APokeRunsARoundWithoutTheClockMoving) {
  auto observer = start();
  auto before = clock_.now();
  std::string c1 = commit_file(master_, "a.txt", "1");
  observer->poll_now();
  ASSERT_TRUE(wait_until([&] { return dispatcher_.dispatches().size() == 1; }));
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1}));
  EXPECT_EQ(clock_.now(), before);
  // The interval starts again after the poked round.
  ASSERT_TRUE(asleep_after(*observer, 2));
}

TEST_F(ObserverClockTest, ARefusedDispatchIsRetriedOnceTheIntervalHasPassed) {
  auto observer = start();
  std::string c1 = commit_file(master_, "a.txt", "1");
  dispatcher_.hold_dispatch(1);
  observer->poll_now();
  ASSERT_TRUE(wait_until([&] { return dispatcher_.holding(); }));
  dispatcher_.release_held(false);  // answered ERR: refused, not recorded
  ASSERT_TRUE(asleep_after(*observer, 2));
  EXPECT_TRUE(dispatcher_.dispatches().empty());
  EXPECT_EQ(observer->handed_over().at("master"), base_);

  clock_.advance(kInterval - 1ms);
  EXPECT_EQ(observer->rounds_completed(), 2u);
  EXPECT_TRUE(dispatcher_.dispatches().empty());

  clock_.advance(1ms);
  ASSERT_TRUE(wait_until([&] { return dispatcher_.dispatches().size() == 1; }));
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1}));
  ASSERT_TRUE(asleep_after(*observer, 3));
  EXPECT_EQ(observer->handed_over().at("master"), c1);
  EXPECT_EQ(dispatcher_.dispatches().size(), 1u);
}

TEST_F(ObserverClockTest, StopWakesALoopAsleepOnTheClock) {
  auto observer = start();
  observer->stop();
  EXPECT_EQ(clock_.waiters(), 0u);
  EXPECT_EQ(observer->rounds_completed(), 1u);
}

TEST(ObserverOptionsTest, NoClockIsAClearError) {
  ObserverOptions o;
  o.repo = "/nonexistent";
  o.clock = nullptr;
  Observer observer(o);
  auto r = observer.start();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("clock"), std::string::npos) << r.error();
}

}  // namespace
}  // namespace ci::observer
