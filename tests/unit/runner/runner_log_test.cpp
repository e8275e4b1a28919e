// The live log of a running test: its output reaches the dispatcher while it runs, all
// of it, even when the dispatcher was away for a while; and never at the cost of the
// results.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "fake_dispatcher.h"
#include "runner/runner.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace test_peer;

class RunnerLogTest : public RunnerTest {
 protected:
  // A test that prints a line, waits for the first gate, prints another, waits for the
  // second one, then ends.
  void use_two_step_test() {
    gate1 = make_gate("gate1");
    gate2 = make_gate("gate2");
    options.job.test_command = "echo first line; cat '" + gate1 +
                               "' > /dev/null; echo second; cat '" + gate2 +
                               "' > /dev/null; echo done";
  }

  bool log_has(JobId job, const std::string& text) {
    return fake.log(job, 1).find(text) != std::string::npos;
  }

  std::string gate1, gate2;
};

TEST_F(RunnerLogTest, OutputReachesTheDispatcherWhileTheTestRuns) {
  use_two_step_test();
  fake.start();
  start_runner();
  ASSERT_EQ(runtest(runner->port(), 5, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return log_has(5, "first line\n"); }));
  EXPECT_EQ(fake.log(5, 1), "first line\n");
  ASSERT_TRUE(open_gate(gate1));
  auto opened = std::chrono::steady_clock::now();
  ASSERT_TRUE(test::wait_until([&] { return log_has(5, "second\n"); }, 5s));
  auto latency = std::chrono::steady_clock::now() - opened;
  RecordProperty(
      "line_latency_us",
      static_cast<int>(std::chrono::duration_cast<std::chrono::microseconds>(latency).count()));
  EXPECT_LT(latency, 1s) << "a printed line arrives one round trip later";
  EXPECT_TRUE(fake.results().empty());
  ASSERT_TRUE(open_gate(gate2));
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  EXPECT_TRUE(test::wait_until([&] { return fake.log(5, 1) == fake.results().front().output; }))
      << fake.log(5, 1);
  EXPECT_EQ(fake.results().front().output, "first line\nsecond\ndone\n");
}

TEST_F(RunnerLogTest, ALogHeldWhileTheDispatcherIsAwayArrivesWhenItIsBack) {
  use_two_step_test();
  test::HeldPort held;  // the dispatcher comes later, on this port
  uint16_t port = held.port();
  start_runner(port);
  ASSERT_EQ(runtest(runner->port(), 6, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return log_count("cannot send its live log") == 1; }));
  fake.start(port);
  ASSERT_TRUE(test::wait_until([&] { return log_has(6, "first line\n"); }));
  ASSERT_TRUE(open_gate(gate1));
  ASSERT_TRUE(open_gate(gate2));
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  EXPECT_TRUE(test::wait_until([&] { return fake.log(6, 1) == "first line\nsecond\ndone\n"; }))
      << fake.log(6, 1);
}

TEST_F(RunnerLogTest, ARefusedLogDoesNotStopTheResults) {
  options.job.test_command = "echo one; echo two";
  fake.start();
  fake.refuse_logs(true);
  start_runner();
  ASSERT_EQ(runtest(runner->port(), 7, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  EXPECT_EQ(fake.results().front().output, "one\ntwo\n");
  EXPECT_EQ(fake.log(7, 1), "");
  EXPECT_TRUE(test::wait_until([&] { return log_count("refused its live log") == 1; }));
}

// A test printing far more than the cap: the log keeps its start and end, and what the
// dispatcher has is marked where bytes were dropped, never out of order.
TEST_F(RunnerLogTest, ALargeOutputIsSentInOrder) {
  options.job.max_output = 64u << 10;
  options.job.test_command =
      "i=0; while [ $i -lt 20000 ]; do echo \"line $i of the test\"; i=$((i+1)); done";
  fake.start();
  start_runner();
  ASSERT_EQ(runtest(runner->port(), 8, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  ASSERT_TRUE(test::wait_until([&] { return log_has(8, "line 19999 of the test\n"); }));
  std::string log = fake.log(8, 1);
  EXPECT_TRUE(log.starts_with("line 0 of the test\nline 1 of the test\n"));
  // Every line that is whole is in order.
  // (Where bytes were dropped, a line may be cut: only the whole ones are read.)
  int64_t last = -1;
  size_t whole = 0;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("line ")) continue;
    long long n = std::atoll(line.c_str() + 5);
    if (line != "line " + std::to_string(n) + " of the test") continue;
    EXPECT_GT(n, last) << line;
    last = n;
    ++whole;
  }
  EXPECT_GT(whole, 2u);
  EXPECT_EQ(last, 19999);
}

}  // namespace
}  // namespace ci::runner
