// The runner's retries on a FakeClock: registration backoff, delivery backoff and the
// dispatcher's silence move only when the test moves time. The liaison is known to be
// asleep when the fake clock counts one waiter (the worker waits without a deadline).
#include <gtest/gtest.h>

#include "ci/clock.h"
#include "fake_dispatcher.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace test_peer;

class RunnerClockTest : public RunnerTest {
 protected:
  void SetUp() override {
    RunnerTest::SetUp();
    options.clock = &clock;
    options.retry_initial = 1s;
    options.retry_max = 4s;
    options.dispatcher_timeout = 1h;
  }

  // Waits for the dispatcher to have seen `n` registrations and the liaison to be
  // asleep again on the fake clock.
  bool registrations_then_asleep(size_t n) {
    return test::wait_until(
        [&] { return fake.registrations().size() == n && clock.waiters() == 1; });
  }

  // Declared after the fixture's runner: it outlives it (TearDown stops the runner).
  FakeClock clock;
};

TEST_F(RunnerClockTest, RegistrationRetriesWaitForTheBackoffOnTheClock) {
  fake.start();
  fake.refuse_registrations(true);
  start_runner();
  ASSERT_TRUE(registrations_then_asleep(1));

  clock.advance(999ms);  // short of the first backoff (1 s): the liaison sleeps on
  EXPECT_EQ(clock.waiters(), 1u);
  EXPECT_EQ(fake.registrations().size(), 1u);
  clock.advance(1ms);
  ASSERT_TRUE(registrations_then_asleep(2));

  clock.advance(1999ms);  // the backoff doubled
  EXPECT_EQ(fake.registrations().size(), 2u);
  clock.advance(1ms);
  ASSERT_TRUE(registrations_then_asleep(3));

  clock.advance(4s);  // 4 s, then the cap: 4 s again
  ASSERT_TRUE(registrations_then_asleep(4));
  clock.advance(3999ms);
  EXPECT_EQ(fake.registrations().size(), 4u);

  fake.refuse_registrations(false);
  clock.advance(1ms);
  ASSERT_TRUE(registrations_then_asleep(5));
  EXPECT_TRUE(test::wait_until([&] { return log_count("registered with the dispatcher") == 1; }));
  // A dispatcher that is down is reported once, not at every retry.
  EXPECT_EQ(log_count("cannot register with the dispatcher"), 1u);
}

TEST_F(RunnerClockTest, DeliveryRetriesWaitForTheBackoffOnTheClock) {
  options.job.test_command = "echo done";
  fake.start();
  fake.busy_results(true);
  start_runner();
  ASSERT_TRUE(registrations_then_asleep(1));
  ASSERT_EQ(runtest(runner->port(), 5, commit), Reply::Kind::Ok);

  ASSERT_TRUE(test::wait_until([&] { return fake.busy_answers() == 1 && clock.waiters() == 1; }));
  EXPECT_TRUE(test::file_exists(spool_file(5)));
  clock.advance(999ms);
  EXPECT_EQ(fake.busy_answers(), 1u);
  clock.advance(1ms);
  ASSERT_TRUE(test::wait_until([&] { return fake.busy_answers() == 2 && clock.waiters() == 1; }));

  clock.advance(1999ms);  // the backoff doubled
  EXPECT_EQ(fake.busy_answers(), 2u);
  EXPECT_TRUE(fake.results().empty());
  fake.busy_results(false);
  clock.advance(1ms);
  ASSERT_TRUE(test::wait_until([&] { return fake.results().size() == 1; }));
  EXPECT_EQ(fake.results()[0].output, "done\n");
  EXPECT_TRUE(test::wait_until([&] { return !test::file_exists(spool_file(5)); }));
  EXPECT_EQ(fake.busy_answers(), 2u);
  EXPECT_EQ(log_count("cannot deliver"), 1u);
}

TEST_F(RunnerClockTest, RegistersAgainOnlyAfterTheDispatchersSilenceOnTheClock) {
  options.dispatcher_timeout = 10s;
  fake.start();
  start_runner();
  ASSERT_TRUE(registrations_then_asleep(1));

  clock.advance(9999ms);
  EXPECT_EQ(fake.registrations().size(), 1u);
  // A ping is word from the dispatcher: the silence starts over.
  EXPECT_EQ(pong(runner->port()), "pong idle");
  clock.advance(1ms);
  clock.advance(9998ms);
  EXPECT_EQ(fake.registrations().size(), 1u);
  clock.advance(1ms);
  ASSERT_TRUE(registrations_then_asleep(2));
  EXPECT_TRUE(
      test::wait_until([&] { return log_count("nothing heard from it for 10000 ms") == 1; }));
}

TEST_F(RunnerClockTest, WaitDrainedTimesOutOnTheClock) {
  options.job.test_command = "echo done";
  fake.start();
  fake.busy_results(true);
  start_runner();
  ASSERT_EQ(runtest(runner->port(), 6, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return fake.busy_answers() == 1 && clock.waiters() == 1; }));
  runner->drain();
  // The result cannot go: no time passes on the clock, so waiting for no time at all
  // says not drained at once.
  EXPECT_FALSE(runner->wait_drained(0ms));
  fake.busy_results(false);
  clock.advance(1s);
  EXPECT_TRUE(runner->wait_drained(1h));  // woken by the delivery, not by the clock
}

}  // namespace
}  // namespace ci::runner
