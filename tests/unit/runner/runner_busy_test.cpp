// A dispatcher at its connection limit answers "ERR busy": the runner's results are not
// refused by that, they wait in the spool and go again with the runner's backoff.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "ci/net.h"
#include "fake_dispatcher.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace test_peer;

TEST_F(RunnerTest, ResultsAnsweredErrBusyStayInTheSpoolAndGoAgain) {
  options.job.test_command = "echo done";
  std::atomic<int> busy_answers{0};
  std::mutex mu;
  std::vector<std::string> delivered;
  // Takes registrations, and says "ERR busy" to the first three deliveries, as a
  // dispatcher at its connection limit says it to any message.
  LineServer dispatcher({}, request_has_body, [&](const Frame& f, const std::string&) {
    if (f.verb() == "results") {
      if (busy_answers.load() < 3) {
        busy_answers++;
        return Response{serialize_reply(Reply::err("busy")), true};
      }
      std::lock_guard lock(mu);
      delivered.push_back(f.body);
    }
    return Response{serialize_reply(Reply::ok()), false};
  });
  ASSERT_TRUE(dispatcher.start().ok());
  start_runner(dispatcher.port());
  ASSERT_EQ(runtest(runner->port(), 5, commit), Reply::Kind::Ok);

  ASSERT_TRUE(test::wait_until([&] {
    std::lock_guard lock(mu);
    return !delivered.empty();
  }));
  EXPECT_EQ(busy_answers.load(), 3);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(delivered, std::vector<std::string>{"done\n"});
  }
  EXPECT_TRUE(test::wait_until([&] { return !test::file_exists(spool_file(5)); }));
  EXPECT_EQ(log_count("refused the results"), 0u);
  EXPECT_GT(log_count("cannot deliver"), 0u);
  runner->stop();
  dispatcher.stop();
}

}  // namespace
}  // namespace ci::runner
