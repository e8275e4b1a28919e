// /api/events: events in feed order with their seq as id, a reconnect with
// Last-Event-ID given what it missed, many idle streams on the server's one thread,
// and a stop with streams open.
#include <gtest/gtest.h>

#include "reporter_fixture.h"

namespace ci::reporter::test_peer {
namespace {

using EventStreamTest = ReporterTest;

TEST_F(EventStreamTest, EventsComeInOrderWithTheirSeq) {
  start();
  SseReader stream(port, "/api/events");
  ASSERT_TRUE(stream.wait_open());
  HttpResult head = parse_http(stream.text());
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-type"], "text/event-stream");

  uint64_t first = feed.add(runner_event(EventKind::RunnerJoined, "127.0.0.1:8900"));
  feed.add(job_event(EventKind::JobQueued, make_job(1, "c1", "master", "queued")));
  JobInfo running = make_job(1, "c1", "master", "running");
  running.runner = "127.0.0.1:8900";
  feed.add(job_event(EventKind::JobStarted, running));
  FeedEvent log;
  log.kind = EventKind::JobLog;
  log.job.id = 1;
  log.log_attempt = 1;
  log.log_size = 42;
  feed.add(log);
  ASSERT_TRUE(stream.wait_events(4)) << stream.text();
  auto events = stream.events();
  const char* kinds[] = {"runner.joined", "job.queued", "job.started", "job.log"};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(events[i].id, std::to_string(first + i));
    EXPECT_EQ(events[i].event, kinds[i]);
    auto data = nlohmann::json::parse(events[i].data);
    EXPECT_EQ(data["seq"], first + i);
    EXPECT_EQ(data["kind"], kinds[i]);
  }
  EXPECT_EQ(nlohmann::json::parse(events[2].data)["job"]["runner"], "127.0.0.1:8900");
  EXPECT_EQ(nlohmann::json::parse(events[3].data)["size"], 42);

  // A client that saw the first two gets the rest, and nothing twice.
  SseReader again(port, "/api/events", {"Last-Event-ID: " + std::to_string(first + 1)});
  ASSERT_TRUE(again.wait_events(2)) << again.text();
  auto replay = again.events();
  ASSERT_EQ(replay.size(), 2u);
  EXPECT_EQ(replay[0].id, std::to_string(first + 2));
  EXPECT_EQ(replay[1].id, std::to_string(first + 3));
}

TEST_F(EventStreamTest, AnHttp11ClientGetsTheStreamChunked) {
  feed.start();
  ReporterOptions o = options();
  o.http.threads = 2;  // a pool of polling threads, each with streams suspended
  start_reporter(o);
  SseReader stream(port, "/api/events", {}, /*http11=*/true);
  ASSERT_TRUE(stream.wait_open());
  feed.add(job_event(EventKind::JobQueued, make_job(1, "c1", "master", "queued")));
  feed.add(job_event(EventKind::JobQueued, make_job(2, "c2", "master", "queued")));
  ASSERT_TRUE(stream.wait_events(2)) << stream.text();
  EXPECT_EQ(stream.events()[1].event, "job.queued");
  EXPECT_EQ(nlohmann::json::parse(stream.events()[1].data)["job"]["id"], 2);
}

TEST_F(EventStreamTest, ManyIdleStreamsAllGetTheNextEvent) {
  ReporterOptions o;
  feed.start();
  o = options();
  o.http.threads = 1;  // every stream on one thread, suspended while idle
  start_reporter(o);
  std::vector<std::unique_ptr<SseReader>> streams;
  for (int i = 0; i < 50; ++i) {
    streams.push_back(std::make_unique<SseReader>(port, "/api/events"));
    ASSERT_TRUE(streams.back()->wait_open());
  }
  // The server still answers while they all wait.
  EXPECT_EQ(get("/api/jobs").status, 200);
  feed.add(job_event(EventKind::JobQueued, make_job(1, "c1", "master", "queued")));
  for (auto& s : streams) {
    ASSERT_TRUE(s->wait_events(1)) << s->text();
    EXPECT_EQ(s->events()[0].event, "job.queued");
  }
  // Stopping with streams open ends them (no connection left suspended).
  reporter->stop();
}

TEST_F(EventStreamTest, AClientTooFarBehindIsToldToReload) {
  start();
  SseReader stream(port, "/api/events", {"Last-Event-ID: 0"});
  ASSERT_TRUE(stream.wait_open());
  feed.add(job_event(EventKind::JobQueued, make_job(1, "c1", "master", "queued")));
  ASSERT_TRUE(stream.wait_events(1)) << stream.text();
  EXPECT_EQ(stream.events()[0].event, "job.queued");
  // After a restart the hub holds nothing before it: an old id asks for a reload.
  reporter.reset();
  start_reporter(options());
  feed.add(job_event(EventKind::JobQueued, make_job(2, "c2", "master", "queued")));
  ASSERT_TRUE(jobs_listed(2));
  SseReader late(port, "/api/events", {"Last-Event-ID: 0"});
  ASSERT_TRUE(late.wait_events(1)) << late.text();
  EXPECT_EQ(late.events()[0].event, "reset");
}

}  // namespace
}  // namespace ci::reporter::test_peer
