// The clocks of ci/clock.h: FakeClock wakes exactly the waiters whose deadline it
// passed, never loses a wakeup to a thread on its way to sleep, and the real clock's
// waits end at their deadline.
#include "ci/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "ci/mutex.h"
#include "test_support.h"

namespace ci {
namespace {

using namespace std::chrono_literals;
using ci::test::wait_until;

// A thread waiting on `clock` until `deadline`, in a loop as callers do.
class Sleeper {
 public:
  Sleeper(Clock& clock, TimePoint deadline) : clock_(clock), deadline_(deadline) {
    thread_ = std::thread([this] {
      MutexLock lock(mu_);
      while (clock_.now() < deadline_) clock_.wait_until(cv_, lock, deadline_);
      woke_ = true;
    });
  }
  ~Sleeper() { thread_.join(); }
  Sleeper(const Sleeper&) = delete;
  Sleeper& operator=(const Sleeper&) = delete;

  bool woke() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return woke_;
  }

 private:
  Clock& clock_;
  const TimePoint deadline_;
  Mutex mu_;
  CondVar cv_;
  bool woke_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TEST(FakeClock, StandsStillUntilAdvanced) {
  FakeClock clock;
  TimePoint start = clock.now();
  EXPECT_EQ(clock.now(), start);
  clock.advance(1500ms);
  EXPECT_EQ(clock.now(), start + 1500ms);
}

TEST(FakeClock, AWaitWhoseDeadlineHasPassedReturnsAtOnce) {
  FakeClock clock;
  Mutex mu;
  CondVar cv;
  MutexLock lock(mu);
  clock.wait_until(cv, lock, clock.now());
  clock.wait_until(cv, lock, clock.now() - 1s);
  EXPECT_EQ(clock.waiters(), 0u);
}

TEST(FakeClock, AdvanceWakesTheWaiterWhoseDeadlinePassedAndNotALaterOne) {
  FakeClock clock;
  TimePoint start = clock.now();
  Sleeper soon(clock, start + 1s);
  Sleeper later(clock, start + 10s);
  ASSERT_TRUE(wait_until([&] { return clock.waiters() == 2; }));

  clock.advance(1s);
  ASSERT_TRUE(wait_until([&] { return soon.woke(); }));
  // The later one was not woken (or, woken spuriously, went back to sleep): it is
  // still among the waiters, and stays there until its own deadline.
  ASSERT_TRUE(wait_until([&] { return clock.waiters() == 1; }));
  EXPECT_FALSE(later.woke());

  clock.advance(8999ms);
  EXPECT_FALSE(later.woke());
  clock.advance(1ms);
  ASSERT_TRUE(wait_until([&] { return later.woke(); }));
  EXPECT_EQ(clock.waiters(), 0u);
}

// advance() comes while the thread is between computing its deadline and sleeping:
// whichever comes first, the thread wakes. A lost wakeup would leave it asleep for good.
TEST(FakeClock, NoWakeupIsLostWhenAdvanceRacesWithAThreadGoingToSleep) {
  FakeClock clock;
  for (int round = 0; round < 500; ++round) {
    Mutex mu;
    CondVar cv;
    bool armed = false;  // guarded by mu
    bool done = false;   // guarded by mu
    std::thread sleeper([&] {
      TimePoint deadline = clock.now() + 1ms;
      MutexLock lock(mu);
      armed = true;
      cv.notify_all();
      while (clock.now() < deadline) clock.wait_until(cv, lock, deadline);
      done = true;
      cv.notify_all();
    });
    {
      // Waits for the deadline to be set, then advances while the sleeper may still be
      // on its way into wait_until.
      MutexLock lock(mu);
      auto real_deadline = std::chrono::steady_clock::now() + 10s;
      while (!armed && cv.wait_until(lock, real_deadline)) {
      }
      ASSERT_TRUE(armed) << "round " << round;
    }
    clock.advance(1ms);
    bool woke = false;
    {
      MutexLock lock(mu);
      auto real_deadline = std::chrono::steady_clock::now() + 10s;
      while (!done && std::chrono::steady_clock::now() < real_deadline)
        cv.wait_until(lock, real_deadline);
      woke = done;
    }
    if (!woke) {
      ADD_FAILURE() << "the sleeper missed its wakeup in round " << round;
      clock.advance(1h);  // lets it go, so that the test ends
    }
    sleeper.join();
    if (!woke) return;
  }
}

TEST(RealClock, AWaitEndsAtItsDeadline) {
  Clock& clock = Clock::real();
  Mutex mu;
  CondVar cv;
  MutexLock lock(mu);
  TimePoint start = clock.now();
  TimePoint deadline = start + 20ms;
  while (clock.now() < deadline) clock.wait_until(cv, lock, deadline);
  EXPECT_GE(clock.now(), deadline);
  EXPECT_LT(clock.now() - start, 10s);
}

}  // namespace
}  // namespace ci
