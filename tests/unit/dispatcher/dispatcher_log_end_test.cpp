// An attempt that ends without its result (given back, lost with its runner, left by a
// runner that goes away) has its log finished: marked done on disk, its memory let go,
// and a late chunk from its runner refused without bringing the log back.
#include "dispatcher_parts.h"

namespace ci {
namespace {

using namespace test_parts;
using namespace std::chrono_literals;

class LogEnd : public DispatcherParts {
 protected:
  std::string done_file(JobId id, uint32_t attempt) {
    return dir_ / ("logs/" + std::to_string(id) + "-" + std::to_string(attempt) + ".done");
  }
  Reply chunk(JobId id, uint32_t attempt, uint64_t offset, const std::string& bytes) {
    return wait_answer(send(LogRequest{id, attempt, runner(), offset, bytes}));
  }
  // The attempt's log as `logread` gives it: its bytes and whether it is done.
  std::pair<std::string, std::string> logread(JobId id, uint32_t attempt) {
    Reply r = wait_answer(send(LogReadRequest{id, attempt, 0, 1000}));
    EXPECT_EQ(r.kind, Reply::Kind::Ok) << r.reason();
    return {r.body, r.args.size() == 3 ? r.args[2] : "?"};
  }
};

TEST_F(LogEnd, AnAttemptGivenBackHasItsLogFinishedAndALateChunkIsRefused) {
  JobId id = running_job('a');
  ASSERT_EQ(chunk(id, 1, 0, "first ").args, std::vector<std::string>{"6"});
  EXPECT_EQ(logs_->held(), 1u);

  Reply back = wait_answer(send(AbandonRequest{id, 1, runner()}));
  ASSERT_EQ(back.kind, Reply::Kind::Ok) << back.reason();
  // Answered once written, and the log is finished by then.
  EXPECT_EQ(logs_->held(), 0u);
  EXPECT_TRUE(test::file_exists(done_file(id, 1)));
  auto read = logs_->read(id, 1, 0, 100);
  ASSERT_TRUE(read.ok()) << read.error();
  EXPECT_TRUE(read->done);

  // The runner, still sending, is told the attempt has ended; nothing is written.
  Reply late = chunk(id, 1, 6, "late");
  ASSERT_EQ(late.kind, Reply::Kind::Err);
  EXPECT_EQ(late.reason(), "job " + std::to_string(id) + " attempt 1 has ended");
  EXPECT_EQ(logs_->held(), 0u);
  EXPECT_EQ(logread(id, 1), std::make_pair(std::string("first "), std::string("1")));
}

TEST_F(LogEnd, ARunnerThatLostItsAttemptHasItFinishedAndTheNextAttemptLogsApart) {
  JobId id = running_job('b');
  ASSERT_EQ(chunk(id, 1, 0, "one\n").args, std::vector<std::string>{"4"});
  // The runner's pong says it is idle: it lost the job (it restarted). The job goes
  // back to it as attempt 2.
  heartbeat_round();
  ASSERT_TRUE(test::wait_until([&] { return runner_.runtests() == 2; }));
  ASSERT_TRUE(running(id, 2));
  EXPECT_TRUE(test::file_exists(done_file(id, 1)));
  EXPECT_EQ(logs_->held(), 0u);

  // A chunk of attempt 1 that arrives now (the old run was alive after all) is refused.
  EXPECT_EQ(chunk(id, 1, 4, "more of one\n").kind, Reply::Kind::Err);
  ASSERT_EQ(chunk(id, 2, 0, "two\n").args, std::vector<std::string>{"4"});
  EXPECT_EQ(logs_->held(), 1u);
  EXPECT_EQ(logread(id, 1), std::make_pair(std::string("one\n"), std::string("1")));
  EXPECT_EQ(logread(id, 2), std::make_pair(std::string("two\n"), std::string("0")));

  // Its result ends attempt 2: no log is held any more.
  ResultsRequest r{id, 2, runner(), TestStatus::Passed, 1, 0, 5, "two\n"};
  ASSERT_EQ(wait_answer(send(r)).kind, Reply::Kind::Ok);
  EXPECT_EQ(logs_->held(), 0u);
  EXPECT_TRUE(test::file_exists(done_file(id, 2)));
  EXPECT_EQ(chunk(id, 2, 4, "after\n").kind, Reply::Kind::Err);
  EXPECT_EQ(logread(id, 2), std::make_pair(std::string("two\n"), std::string("1")));
}

TEST_F(LogEnd, ACancelledAttemptKeepsItsLastLinesUntilItsRunnerSaysItStopped) {
  JobId id = running_job('c');
  ASSERT_EQ(wait_answer(send(CancelRequest{id, 0})).kind, Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] {
    MutexLock lock(state_.mutex);
    return state_.scheduler.job(id)->state == JobState::Finished;
  }));
  // Told to stop, the runner still sends what its test printed meanwhile.
  ASSERT_EQ(chunk(id, 1, 0, "last words\n").args, std::vector<std::string>{"11"});
  ResultsRequest r{id, 1, runner(), TestStatus::Cancelled, -1, -1, 0, ""};
  ASSERT_EQ(wait_answer(send(r)).kind, Reply::Kind::Ok);
  // Its result (a duplicate) ends the attempt.
  ASSERT_TRUE(test::wait_until([&] { return test::file_exists(done_file(id, 1)); }));
  EXPECT_EQ(logs_->held(), 0u);
  EXPECT_EQ(chunk(id, 1, 11, "more").kind, Reply::Kind::Err);
  EXPECT_EQ(logs_->held(), 0u);
  EXPECT_EQ(logread(id, 1), std::make_pair(std::string("last words\n"), std::string("1")));
}

// The whole dispatcher, over loopback, on the fake clock: a runner that leaves while it
// runs a job leaves that attempt's log finished in the log folder.
TEST(DispatcherLogs, ARunnerLeavingMidJobLeavesItsAttemptsLogDone) {
  FakeRunner fake;
  test::TempDir dir;
  FakeClock clock;
  DispatcherOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.results_dir = dir / "test_results";
  options.log_dir = dir / "logs";
  options.heartbeat_interval = 1000ms;
  Dispatcher dispatcher(options, std::make_unique<MemoryStore>(std::make_shared<MemoryStoreData>()),
                        clock);
  ASSERT_TRUE(dispatcher.start().ok());
  LineClient client("127.0.0.1", dispatcher.port());
  auto ok = [&](const Request& request) {
    auto reply = client.call(request);
    EXPECT_TRUE(reply.ok()) << reply.error();
    return reply.ok() ? *reply : Reply::err(reply.error());
  };
  ASSERT_EQ(ok(RegisterRequest{"127.0.0.1", fake.port()}).kind, Reply::Kind::Ok);
  ASSERT_EQ(ok(DispatchRequest{commit_id('c'), "main"}).args, std::vector<std::string>{"1"});
  ASSERT_TRUE(test::wait_until([&] {
    std::string body = ok(JobRequest{1}).body;
    auto info = parse_job_info(body.substr(0, body.find('\n')));
    return info.ok() && info->state == "running";
  }));
  const std::string runner = fake.address();
  ASSERT_EQ(ok(LogRequest{1, 1, runner, 0, "partial"}).args, std::vector<std::string>{"7"});
  EXPECT_FALSE(test::file_exists(dir / "logs/1-1.done"));

  ASSERT_EQ(ok(UnregisterRequest{"127.0.0.1", fake.port()}).kind, Reply::Kind::Ok);
  EXPECT_TRUE(test::file_exists(dir / "logs/1-1.done"));
  Reply late = ok(LogRequest{1, 1, runner, 7, " and more"});
  EXPECT_EQ(late.kind, Reply::Kind::Err);
  EXPECT_EQ(late.reason(), "job 1 attempt 1 has ended");
  Reply read = ok(LogReadRequest{1, 1, 0, 100});
  EXPECT_EQ(read.body, "partial");
  EXPECT_EQ(read.args, (std::vector<std::string>{"0", "7", "1"}));
  dispatcher.stop();
}

}  // namespace
}  // namespace ci
