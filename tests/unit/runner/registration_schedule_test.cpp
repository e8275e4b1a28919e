#include "runner/registration_schedule.h"

#include <gtest/gtest.h>

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using TimePoint = RegistrationSchedule::TimePoint;

TEST(Backoff, DoublesUpToTheCapAndResets) {
  Backoff backoff(100ms, 1000ms);
  EXPECT_EQ(backoff.next(), 100ms);
  EXPECT_EQ(backoff.next(), 200ms);
  EXPECT_EQ(backoff.next(), 400ms);
  EXPECT_EQ(backoff.next(), 800ms);
  EXPECT_EQ(backoff.next(), 1000ms);
  EXPECT_EQ(backoff.next(), 1000ms);
  backoff.reset();
  EXPECT_EQ(backoff.next(), 100ms);
}

class RegistrationScheduleTest : public ::testing::Test {
 protected:
  TimePoint t0{std::chrono::seconds(1000)};
  RegistrationSchedule schedule{t0, 10s, Backoff(100ms, 5s)};
};

TEST_F(RegistrationScheduleTest, DueAtOnceAtStart) {
  EXPECT_FALSE(schedule.registered());
  EXPECT_TRUE(schedule.due(t0));
}

TEST_F(RegistrationScheduleTest, FailuresBackOffAndOnlyTheFirstOfAStreakIsReported) {
  EXPECT_TRUE(schedule.failed(t0));
  EXPECT_EQ(schedule.next_attempt(), t0 + 100ms);
  EXPECT_FALSE(schedule.due(t0 + 99ms));
  EXPECT_TRUE(schedule.due(t0 + 100ms));
  EXPECT_FALSE(schedule.failed(t0 + 100ms));
  EXPECT_EQ(schedule.next_attempt(), t0 + 300ms);
  TimePoint now = t0 + 300ms;
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(schedule.failed(now));
    now = schedule.next_attempt();
  }
  EXPECT_FALSE(schedule.failed(now));
  EXPECT_EQ(schedule.next_attempt(), now + 5s);
}

TEST_F(RegistrationScheduleTest, RegistersAgainOnlyAfterTheDispatcherIsSilent) {
  schedule.succeeded(t0);
  EXPECT_TRUE(schedule.registered());
  EXPECT_FALSE(schedule.due(t0 + 9s));
  schedule.heard(t0 + 8s);
  EXPECT_FALSE(schedule.due(t0 + 17s));
  EXPECT_TRUE(schedule.due(t0 + 18s));
  schedule.succeeded(t0 + 18s);
  EXPECT_EQ(schedule.next_attempt(), t0 + 28s);
}

TEST_F(RegistrationScheduleTest, SuccessEndsTheStreakAndResetsTheBackoff) {
  EXPECT_TRUE(schedule.failed(t0));
  EXPECT_FALSE(schedule.failed(t0 + 100ms));
  schedule.succeeded(t0 + 300ms);
  // A failed renewal later starts a new streak, from the initial delay.
  TimePoint later = t0 + 20s;
  ASSERT_TRUE(schedule.due(later));
  EXPECT_TRUE(schedule.failed(later));
  EXPECT_FALSE(schedule.registered());
  EXPECT_EQ(schedule.next_attempt(), later + 100ms);
}

TEST_F(RegistrationScheduleTest, AMessageFromTheDispatcherCutsTheBackoffShort) {
  EXPECT_TRUE(schedule.failed(t0));
  EXPECT_FALSE(schedule.failed(t0 + 100ms));
  ASSERT_EQ(schedule.next_attempt(), t0 + 300ms);
  schedule.heard(t0 + 150ms);  // it pinged: it is up again
  EXPECT_TRUE(schedule.due(t0 + 150ms));
  EXPECT_FALSE(schedule.registered());
  // Once registered, a message only postpones the next renewal.
  schedule.succeeded(t0 + 200ms);
  schedule.heard(t0 + 5s);
  EXPECT_EQ(schedule.next_attempt(), t0 + 15s);
}

}  // namespace
}  // namespace ci::runner
