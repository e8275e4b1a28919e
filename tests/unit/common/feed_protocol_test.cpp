// The verbs of live logs, test cases, cancel and the event feed, and the feed's JSON.
#include <gtest/gtest.h>

#include "ci/events.h"
#include "ci/framing.h"
#include "ci/protocol.h"
#include "request_wire.h"

namespace ci {
namespace {

const std::string kCommit(40, 'a');

using test::parse_bytes;
using test::reason;
using test::round_trip;
using test::wire;

TEST(FeedProtocol, NewRequestsRoundTrip) {
  auto log = round_trip(LogRequest{4, 2, "127.0.0.1:8900", 1024, std::string("a\0b\nc", 5)});
  EXPECT_EQ(log.job, 4u);
  EXPECT_EQ(log.attempt, 2u);
  EXPECT_EQ(log.offset, 1024u);
  EXPECT_EQ(log.bytes, std::string("a\0b\nc", 5));

  auto read = round_trip(LogReadRequest{4, 0, 10, 4096});
  EXPECT_EQ(read.attempt, 0u);
  EXPECT_EQ(read.max, 4096u);
  EXPECT_EQ(round_trip(CancelRequest{9, 0}).attempt, 0u);
  EXPECT_EQ(round_trip(CancelRequest{9, 3}).attempt, 3u);
  EXPECT_EQ(round_trip(TestsRequest{9, 0}).job, 9u);
  EXPECT_EQ(round_trip(JobRequest{11}).job, 11u);
  auto events = round_trip(EventsRequest{77, 500, 25000});
  EXPECT_EQ(events.from, 77u);
  EXPECT_EQ(events.wait_ms, 25000u);
  EXPECT_EQ(round_trip(SnapshotRequest{100, 1000}).after, 100u);

  JobsRequest jobs{20};
  jobs.branch = "feature/x";
  jobs.status = "failed";
  auto j = round_trip(jobs);
  EXPECT_EQ(j.limit, 20u);
  EXPECT_EQ(j.branch, "feature/x");
  EXPECT_EQ(j.status, "failed");
}

TEST(FeedProtocol, DispatchCarriesCommitInfo) {
  CommitInfo info{"Alice Example", "alice@example.com", "Fix the parser", 1764720000};
  DispatchRequest d{kCommit, "main", serialize_commit_info(info)};
  auto back = round_trip(d);
  auto parsed = parse_commit_info(back.info);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(*parsed, info);
  // The seed's three words still parse, with no info.
  EXPECT_EQ(round_trip(DispatchRequest{kCommit, "main"}).info, "");
  EXPECT_EQ(wire(DispatchRequest{kCommit, "main"}), "dispatch " + kCommit + " main\n");
}

TEST(FeedProtocol, ResultsCarryCasesAfterTheOutput) {
  ResultsRequest r;
  r.job = 3;
  r.attempt = 1;
  r.runner = "127.0.0.1:8900";
  r.status = TestStatus::Cancelled;
  r.output = "some output\n";
  r.cases = serialize_cases({{"mod.T.test_a", CaseOutcome::Failed, 12, "boom"}});
  auto back = round_trip(r);
  EXPECT_EQ(back.status, TestStatus::Cancelled);
  EXPECT_EQ(back.output, r.output);
  EXPECT_EQ(back.cases, r.cases);
  // Without cases: the seed's eight words, as an older runner's spool holds them.
  r.cases.clear();
  std::string bytes = wire(r);
  EXPECT_EQ(bytes.substr(0, bytes.find('\n')), "results 3 1 127.0.0.1:8900 cancelled - - 0 12");
  EXPECT_EQ(round_trip(r).output, r.output);
}

TEST(FeedProtocol, MalformedNewRequestsAreRefusedWithAReason) {
  EXPECT_EQ(reason("log 0 1 127.0.0.1:8900 0 1\nx"), "job id must be a positive number");
  EXPECT_EQ(reason("log 1 1 nohost 0 1\nx").rfind("runner: ", 0), 0u);
  EXPECT_EQ(reason("logread 1 0 0 0\n"), "logread max must be a number from 1 to 1048576");
  EXPECT_EQ(reason("logread 1 0 0 99999999\n"), "logread max must be a number from 1 to 1048576");
  EXPECT_EQ(reason("cancel\n"), "usage: cancel <job> [<attempt>]");
  EXPECT_EQ(reason("cancel 5 0\n"), "attempt must be a positive number");
  EXPECT_EQ(reason("events 0 0 0\n"), "events max must be a number from 1 to 10000");
  EXPECT_EQ(reason("events 0 10 60001\n"), "events wait must be at most 60000 ms");
  EXPECT_EQ(reason("snapshot 0 0\n"), "snapshot limit must be a number from 1 to 10000");
  EXPECT_EQ(reason("jobs 10 branch=..bad\n").empty(), false);
  EXPECT_NE(reason("jobs 10 branch=..bad\n"), "accepted");
  EXPECT_EQ(reason("jobs 10 status=sleeping\n").rfind("status= takes", 0), 0u);
  EXPECT_EQ(reason("jobs 10 color=red\n"),
            "usage: jobs [limit] [branch=<b>] [status=<s>] [repo=<r>]");
  // Cases that are not JSON lines, and a cases length past the body.
  EXPECT_EQ(reason("results 1 1 127.0.0.1:8900 failed 1 1 5 3 4\nabcd").rfind("test cases: ", 0),
            0u);
  EXPECT_EQ(reason("results 1 1 127.0.0.1:8900 failed 1 1 5 9 4\nabcd"),
            "cases length must be a number no larger than the body");
  EXPECT_EQ(reason("dispatch " + kCommit + " main 7\nnotjson"), "commit info is not JSON");
}

TEST(FeedEvents, EveryKindRoundTrips) {
  JobInfo job;
  job.id = 7;
  job.commit = kCommit;
  job.branch = "main";
  job.commit_info = {"Bob", "bob@example.com", "Add \"quotes\" and ünïcode", 1764720000};
  job.state = "finished";
  job.status = TestStatus::Failed;
  job.attempt = 2;
  job.runner = "127.0.0.1:8901";
  job.tests_run = 10;
  job.tests_failed = 1;
  job.duration_ms = 1234;
  job.queued_ms = 1764720000000;
  job.started_ms = 1764720000100;
  job.finished_ms = 1764720001334;
  job.seq = 42;

  FeedEvent finished;
  finished.seq = 42;
  finished.time_ms = 1764720001334;
  finished.kind = EventKind::JobFinished;
  finished.job = job;
  finished.cases = {{"a.B.test_one", CaseOutcome::Passed, 3, ""},
                    {"a.B.test two: spaces", CaseOutcome::Failed, 4, "AssertionError: 1 != 2"}};

  FeedEvent log;
  log.seq = 43;
  log.kind = EventKind::JobLog;
  log.job.id = 7;
  log.log_attempt = 2;
  log.log_size = 65536;

  FeedEvent joined;
  joined.seq = 44;
  joined.kind = EventKind::RunnerJoined;
  joined.runner = "127.0.0.1:8902";

  std::string body = serialize_event(finished) + serialize_event(log) + serialize_event(joined);
  auto events = parse_events(body);
  ASSERT_TRUE(events.ok()) << events.error();
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0], finished);
  EXPECT_EQ((*events)[1], log);
  EXPECT_EQ((*events)[2], joined);
}

TEST(FeedEvents, HostileLinesAreRefused) {
  EXPECT_FALSE(parse_event("not json").ok());
  EXPECT_FALSE(parse_event("[]").ok());
  EXPECT_FALSE(parse_event(R"({"seq":0,"kind":"job.queued","job":{"id":1}})").ok());
  EXPECT_FALSE(parse_event(R"({"seq":1,"kind":"job.exploded","job":{"id":1}})").ok());
  EXPECT_FALSE(parse_event(R"({"seq":1,"kind":"job.queued"})").ok());
  EXPECT_FALSE(parse_event(R"({"seq":1,"kind":"job.queued","job":{"id":"x"}})").ok());
  EXPECT_FALSE(parse_event(R"({"seq":1,"kind":"job.queued","job":{"id":1,"commit":"zz"}})").ok());
  EXPECT_FALSE(parse_event(R"({"seq":-4,"kind":"runner.left","runner":"h:1"})").ok());
  auto ok = parse_event(R"({"seq":1,"kind":"job.queued","job":{"id":1},"future":true})");
  EXPECT_TRUE(ok.ok()) << "unknown fields are skipped: " << ok.error();
}

}  // namespace
}  // namespace ci
