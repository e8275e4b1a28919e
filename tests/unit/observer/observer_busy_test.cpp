// A dispatcher at its connection limit answers "ERR busy": the observer keeps the
// commit and hands it over in a later round, once.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "ci/net.h"
#include "observer/observer.h"
#include "test_support.h"

namespace ci::observer {
namespace {

using namespace std::chrono_literals;

TEST(ObserverBusy, ACommitAnsweredErrBusyIsHandedOverLaterOnce) {
  ci::test::TempDir tmp;
  std::string master = tmp / "master";
  ci::test::make_master_repo(master);
  std::string clone = ci::test::clone_repo(master, tmp / "clone");

  std::atomic<int> busy_answers{0};
  std::mutex mu;
  std::vector<std::string> dispatched;
  // Ready, but "ERR busy" to the first three dispatches, as a dispatcher at its
  // connection limit says it to any message.
  LineServer dispatcher({}, request_has_body, [&](const Frame& f, const std::string&) {
    if (f.verb() == "status")
      return Response{serialize_reply(Reply::ok_with_body("runners 0\n")), false};
    if (busy_answers.load() < 3) {
      busy_answers++;
      return Response{serialize_reply(Reply::err("busy")), true};
    }
    std::lock_guard lock(mu);
    dispatched.push_back(f.words.size() > 1 ? f.words[1] : "");
    return Response{serialize_reply(Reply::ok({std::to_string(dispatched.size())})), false};
  });
  ASSERT_TRUE(dispatcher.start().ok());

  ObserverOptions o;
  o.repo = clone;
  o.dispatcher = {"127.0.0.1", dispatcher.port()};
  o.interval = 20ms;
  o.client.connect_timeout = 2000ms;
  o.client.io_timeout = 5000ms;
  Observer observer(o);
  ASSERT_TRUE(observer.start().ok());
  ASSERT_TRUE(ci::test::wait_until([&] { return observer.rounds_completed() >= 1; }));
  std::string commit = ci::test::commit_file(master, "a.txt", "1");

  ASSERT_TRUE(ci::test::wait_until([&] {
    std::lock_guard lock(mu);
    return !dispatched.empty();
  }));
  EXPECT_EQ(busy_answers.load(), 3);
  // Handed over, and not again in the rounds that follow.
  uint64_t rounds = observer.rounds_completed();
  ASSERT_TRUE(ci::test::wait_until([&] { return observer.rounds_completed() >= rounds + 3; }));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(dispatched, std::vector<std::string>{commit});
  }
  EXPECT_EQ(observer.handed_over().at("master"), commit);
  observer.stop();
  dispatcher.stop();
}

}  // namespace
}  // namespace ci::observer
