// cictl against a real dispatcher, with a fake runner played by the test: show (and
// what broke a failing test), log and log --follow, cancel of a queued job, and
// dispatch --wait ending with the exit code of a cancel made by another client.
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <sstream>

#include "ci/events.h"
#include "ci/process.h"
#include "cluster.h"
#include "raw_peer.h"

namespace ci {
namespace {

using test::Cluster;
using namespace std::chrono_literals;

std::string commit_of(char c) { return std::string(40, c); }

// A runner that takes every job and says it is busy with it until the test reports
// a result for it.
class FakeRunner {
 public:
  FakeRunner()
      : server_([this](test::RawSocket& socket) {
          while (auto line = socket.read_line(10s)) {
            std::istringstream words(*line);
            std::string verb;
            JobId job = 0;
            uint32_t attempt = 0;
            words >> verb >> job >> attempt;
            std::lock_guard<std::mutex> lock(mutex_);
            if (verb == "runtest") {
              running_ = {job, attempt};
              started_.push_back(job);
              socket.send("OK\n");
            } else if (verb == "cancel") {
              socket.send("OK\n");
            } else if (running_.first != 0) {
              socket.send("pong busy " + std::to_string(running_.first) + " " +
                          std::to_string(running_.second) + "\n");
            } else {
              socket.send("pong idle\n");
            }
          }
        }) {}
  std::string address() const { return server_.address(); }
  uint16_t port() const { return server_.port(); }
  bool started(JobId job) {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::find(started_.begin(), started_.end(), job) != started_.end();
  }
  // Once its result is in: idle, unless the dispatcher has given it the next job.
  void finished(JobId job) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (running_.first == job) running_ = {0, 0};
  }

 private:
  std::mutex mutex_;
  std::pair<JobId, uint32_t> running_{0, 0};  // guarded by mutex_
  std::vector<JobId> started_;                // guarded by mutex_
  test::RawServer server_;                    // last: its threads use the members above
};

class CtlCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_.start_dispatcher();
    ASSERT_TRUE(cluster_.ask(RegisterRequest{"127.0.0.1", runner_.port()}).ok());
    ASSERT_TRUE(cluster_.wait_runners(1));
  }

  // cictl run as a process: its exit code, and its stdout and stderr together.
  CommandResult cictl(std::vector<std::string> args) { return cluster_.cictl(std::move(args)); }

  JobId dispatch(char commit, const std::string& author) {
    CommitInfo info;
    info.author = author;
    info.subject = "change " + std::string(1, commit);
    auto reply =
        cluster_.ask(DispatchRequest{commit_of(commit), "main", serialize_commit_info(info)});
    EXPECT_TRUE(reply.ok() && reply->args.size() == 1);
    return reply.ok() && reply->args.size() == 1 ? std::stoull(reply->args[0]) : 0;
  }
  void log(JobId job, uint64_t offset, const std::string& bytes) {
    auto reply = cluster_.ask(LogRequest{job, 1, runner_.address(), offset, bytes});
    ASSERT_TRUE(reply.ok() && reply->kind == Reply::Kind::Ok) << (reply ? reply->reason() : "");
  }
  void finish(JobId job, TestStatus status, const std::vector<TestCase>& cases) {
    ResultsRequest r;
    r.job = job;
    r.attempt = 1;
    r.runner = runner_.address();
    r.status = status;
    r.tests_run = static_cast<int64_t>(cases.size());
    r.tests_failed = 0;
    r.duration_ms = 40;
    r.output = "the output\n";
    r.cases = serialize_cases(cases);
    auto reply = cluster_.ask(r);
    runner_.finished(job);
    ASSERT_TRUE(reply.ok() && reply->kind == Reply::Kind::Ok) << (reply ? reply->reason() : "");
  }
  std::string state_of(JobId job) {
    for (const JobRow& row : test::jobs_of(cluster_))
      if (row.id == job) return row.state + (row.status ? to_string(*row.status) : "");
    return "";
  }

  FakeRunner runner_;  // first: outlives the dispatcher's connections to it
  Cluster cluster_;
};

TestCase passing(const std::string& name) { return {name, CaseOutcome::Passed, 2, ""}; }
TestCase failing(const std::string& name) {
  return {name, CaseOutcome::Failed, 5, "AssertionError: 1 != 2"};
}

TEST_F(CtlCluster, ShowLogAndCancel) {
  JobId first = dispatch('a', "Alice");
  ASSERT_TRUE(test::wait_until([&] { return runner_.started(first); }));
  log(first, 0, "line one\n");
  auto read = cictl({"log", std::to_string(first)});
  EXPECT_EQ(read.exit_code, 0) << read.output;
  EXPECT_EQ(read.output, "line one\n");

  // Followed: the second line arrives while cictl reads, and it ends with the attempt.
  auto follow = std::async(std::launch::async, [&] {
    return cictl({"log", std::to_string(first), "--follow"});
  });
  log(first, 9, "line two\n");
  finish(first, TestStatus::Passed, {passing("t.one"), passing("t.two")});
  auto followed = follow.get();
  EXPECT_EQ(followed.exit_code, 0) << followed.output;
  EXPECT_EQ(followed.output, "line one\nline two\n");

  // t.one breaks in the second job and still fails in the third.
  JobId second = dispatch('b', "Bob");
  ASSERT_TRUE(test::wait_until([&] { return runner_.started(second); }));
  finish(second, TestStatus::Failed, {failing("t.one"), passing("t.two")});
  JobId third = dispatch('c', "Carol");
  ASSERT_TRUE(test::wait_until([&] { return runner_.started(third); }));
  finish(third, TestStatus::Failed, {failing("t.one"), passing("t.two"), failing("t.new")});

  auto shown = cictl({"show", "ccccccc"});
  EXPECT_EQ(shown.exit_code, 0) << shown.output;
  for (const std::string& part : std::vector<std::string>{
           "job       " + std::to_string(third), "author    Carol", "subject   change c",
           std::string("state     finished (failed)"), std::string("failed   t.new"),
           "t.one  failing since bbbbbbb by Bob, 1 commit ago (job " + std::to_string(second) + ")",
           std::string("t.new  broken here")})
    EXPECT_NE(shown.output.find(part), std::string::npos) << part << "\n" << shown.output;
  auto as_json = cictl({"--json", "show", std::to_string(third)});
  EXPECT_EQ(as_json.exit_code, 0) << as_json.output;
  EXPECT_NE(as_json.output.find("\"commits_ago\":1"), std::string::npos) << as_json.output;
  EXPECT_EQ(cictl({"show", "1234567"}).exit_code, 1);
  EXPECT_EQ(cictl({"show", "xyz"}).exit_code, 2);

  // The runner is kept busy: the next job waits in the queue, and is cancelled there.
  JobId busy = dispatch('d', "Dan");
  ASSERT_TRUE(test::wait_until([&] { return runner_.started(busy); }));
  JobId queued = dispatch('e', "Eve");
  auto cancelled = cictl({"cancel", std::to_string(queued)});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.output;
  EXPECT_EQ(cancelled.output, "job " + std::to_string(queued) + " cancelled\n");
  EXPECT_EQ(state_of(queued), "finishedcancelled");
  EXPECT_EQ(cictl({"cancel", std::to_string(queued)}).exit_code, 1);  // it has finished
}

TEST_F(CtlCluster, DispatchWaitEndsWithTheResult) {
  JobId busy = dispatch('d', "Dan");
  ASSERT_TRUE(test::wait_until([&] { return runner_.started(busy); }));
  auto waiting = std::async(std::launch::async, [&] {
    return cictl({"dispatch", commit_of('f'), "--branch", "main", "--wait"});
  });
  JobId queued = busy + 1;
  ASSERT_TRUE(test::wait_until([&] { return state_of(queued) == "queued"; }));
  ASSERT_TRUE(cluster_.ask(CancelRequest{queued, 0}).ok());
  auto waited = waiting.get();
  EXPECT_EQ(waited.exit_code, 3) << waited.output;
  EXPECT_NE(waited.output.find("job " + std::to_string(queued) + " cancelled"), std::string::npos)
      << waited.output;

  // The running one passes: exit code 0.
  auto passing_wait = std::async(std::launch::async, [&] {
    return cictl({"--json", "dispatch", commit_of('1'), "--wait"});
  });
  JobId next = queued + 1;
  ASSERT_TRUE(test::wait_until([&] { return state_of(next) == "queued"; }));
  finish(busy, TestStatus::Passed, {passing("t.one")});
  ASSERT_TRUE(test::wait_until([&] { return runner_.started(next); }));
  finish(next, TestStatus::Passed, {passing("t.one")});
  auto passed = passing_wait.get();
  EXPECT_EQ(passed.exit_code, 0) << passed.output;
  EXPECT_NE(passed.output.find("\"status\":\"passed\""), std::string::npos) << passed.output;
}

}  // namespace
}  // namespace ci
