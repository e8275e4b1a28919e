// The dispatcher's new verbs through its parts, on a fake clock: a feed reader waits
// for the next write, logs are appended once and read by range, test cases come back
// with their job, and a cancel ends a job at once with a result file that says so.
#include <fstream>
#include <sstream>

#include "dispatcher_parts.h"

namespace ci {
namespace {

using namespace test_parts;
using namespace std::chrono_literals;

class DispatcherFeed : public DispatcherParts {
 protected:
  std::vector<FeedEvent> events_in(const Reply& reply) {
    auto events = parse_events(reply.body);
    EXPECT_TRUE(events.ok()) << events.error();
    return events.ok() ? *events : std::vector<FeedEvent>{};
  }
};

TEST_F(DispatcherFeed, AReaderWaitsForTheNextWriteAndGetsItsEvents) {
  size_t n = send(EventsRequest{0, 100, 30000});
  // Nothing written yet: it waits (on the fake clock, which does not move).
  EXPECT_FALSE(answer(n).has_value());
  wait_answer(send(DispatchRequest{commit_id('a'), "main"}));
  Reply reply = wait_answer(n);
  ASSERT_EQ(reply.kind, Reply::Kind::Ok) << reply.reason();
  ASSERT_EQ(reply.args.size(), 2u);
  auto events = events_in(reply);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, EventKind::JobQueued);
  EXPECT_EQ(events[0].job.commit, commit_id('a'));
  EXPECT_EQ(reply.args[1], std::to_string(events[0].seq));  // the last seq
}

TEST_F(DispatcherFeed, AReaderWithNothingNewHearsAnEmptyPageWhenItsWaitIsOver) {
  wait_answer(send(DispatchRequest{commit_id('a'), "main"}));
  size_t n = send(EventsRequest{1, 100, 5000});
  ASSERT_TRUE(test::wait_until([&] { return clock_.waiting_until(clock_.now() + 5s); }));
  clock_.advance(4s);
  EXPECT_FALSE(answer(n).has_value());
  clock_.advance(1s);
  Reply reply = wait_answer(n);
  ASSERT_EQ(reply.kind, Reply::Kind::Ok);
  EXPECT_EQ(reply.body, "");
}

TEST_F(DispatcherFeed, LogChunksAreAppendedOnceAndReadByRange) {
  JobId id = running_job('b');
  Reply first = wait_answer(send(LogRequest{id, 1, runner(), 0, "hello "}));
  ASSERT_EQ(first.kind, Reply::Kind::Ok) << first.reason();
  EXPECT_EQ(first.args, std::vector<std::string>{"6"});
  // Resent (its answer was lost), then the next chunk overlapping it.
  EXPECT_EQ(wait_answer(send(LogRequest{id, 1, runner(), 0, "hello "})).args.at(0), "6");
  EXPECT_EQ(wait_answer(send(LogRequest{id, 1, runner(), 3, "lo world\n"})).args.at(0), "12");
  // Not its runner's: refused.
  EXPECT_EQ(wait_answer(send(LogRequest{id, 1, "127.0.0.1:1", 12, "x"})).kind, Reply::Kind::Err);

  Reply read = wait_answer(send(LogReadRequest{id, 0, 6, 100}));
  ASSERT_EQ(read.kind, Reply::Kind::Ok) << read.reason();
  EXPECT_EQ(read.body, "world\n");
  EXPECT_EQ(read.args, (std::vector<std::string>{"6", "12", "0"}));  // start, total, not done

  // The feed says the log grew: one event, written with the next lazy write.
  auto logged = [&] {
    for (const auto& e : events_in(wait_answer(send(EventsRequest{0, 100, 0}))))
      if (e.kind == EventKind::JobLog && e.job.id == id && e.log_size == 12) return true;
    return false;
  };
  ASSERT_TRUE(test::wait_until(
      [&] { return clock_.waiting_until(clock_.now() + GroupCommitter::kLazyWriteDelay); }));
  clock_.advance(GroupCommitter::kLazyWriteDelay);
  EXPECT_TRUE(test::wait_until(logged));

  // Its result ends the attempt: the log is done.
  ResultsRequest r;
  r.job = id;
  r.attempt = 1;
  r.runner = runner();
  r.status = TestStatus::Failed;
  r.output = "hello world\n";
  r.cases = serialize_cases({{"m.T.test_a", CaseOutcome::Failed, 3, "assert"},
                             {"m.T.test_b", CaseOutcome::Passed, 1, ""}});
  ASSERT_EQ(wait_answer(send(r)).kind, Reply::Kind::Ok);
  EXPECT_EQ(wait_answer(send(LogReadRequest{id, 1, 12, 100})).args.at(2), "1");

  Reply tests = wait_answer(send(TestsRequest{id, 0}));
  ASSERT_EQ(tests.kind, Reply::Kind::Ok) << tests.reason();
  auto cases = parse_cases(tests.body);
  ASSERT_TRUE(cases.ok()) << cases.error();
  ASSERT_EQ(cases->size(), 2u);
  EXPECT_EQ((*cases)[0].name, "m.T.test_a");

  Reply job = wait_answer(send(JobRequest{id}));
  auto info = parse_job_info(job.body);
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->status, TestStatus::Failed);
}

TEST_F(DispatcherFeed, CancellingAQueuedJobWritesACancelledResultAtOnce) {
  Reply d = wait_answer(send(DispatchRequest{commit_id('c'), "main"}));
  JobId id = std::stoull(d.args.at(0));
  Reply c = wait_answer(send(CancelRequest{id, 0}));
  ASSERT_EQ(c.kind, Reply::Kind::Ok) << c.reason();
  ASSERT_TRUE(test::wait_until([&] {
    MutexLock lock(state_.mutex);
    return state_.scheduler.job(id)->state == JobState::Finished;
  }));
  std::ifstream file(writer_.path_for(commit_id('c')));
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_NE(text.str().find("cancelled"), std::string::npos) << text.str();
  // Twice: the job has finished.
  EXPECT_EQ(wait_answer(send(CancelRequest{id, 0})).reason(), "job 1 has finished");
  EXPECT_EQ(wait_answer(send(CancelRequest{99, 0})).reason(), "unknown job 99");
}

TEST_F(DispatcherFeed, CancellingARunningJobTellsItsRunner) {
  JobId id = running_job('d');
  ASSERT_EQ(wait_answer(send(CancelRequest{id, 0})).kind, Reply::Kind::Ok);
  EXPECT_TRUE(test::wait_until([&] { return runner_.cancels() == 1; }));
  // The runner's own result after it stopped is a duplicate: the job stays cancelled.
  ResultsRequest r;
  r.job = id;
  r.attempt = 1;
  r.runner = runner();
  r.status = TestStatus::Cancelled;
  ASSERT_TRUE(test::wait_until([&] {
    MutexLock lock(state_.mutex);
    return state_.scheduler.job(id)->state == JobState::Finished;
  }));
  ASSERT_EQ(wait_answer(send(r)).kind, Reply::Kind::Ok);
  MutexLock lock(state_.mutex);
  EXPECT_EQ(state_.scheduler.job(id)->outcome->status, TestStatus::Cancelled);
  EXPECT_EQ(state_.scheduler.runners().at(runner()).state, RunnerState::Idle);
}

TEST_F(DispatcherFeed, ASnapshotGivesTheJobsAfterAnIdAndTheFeedsPosition) {
  for (char c : {'a', 'b', 'c'}) wait_answer(send(DispatchRequest{commit_id(c), "main"}));
  Reply snap = wait_answer(send(SnapshotRequest{1, 10}));
  ASSERT_EQ(snap.kind, Reply::Kind::Ok) << snap.reason();
  EXPECT_EQ(snap.args, std::vector<std::string>{"3"});
  std::istringstream lines(snap.body);
  std::vector<JobId> ids;
  for (std::string line; std::getline(lines, line);) {
    auto info = parse_job_info(line);
    ASSERT_TRUE(info.ok()) << info.error();
    ids.push_back(info->id);
  }
  EXPECT_EQ(ids, (std::vector<JobId>{2, 3}));
}

}  // namespace
}  // namespace ci
