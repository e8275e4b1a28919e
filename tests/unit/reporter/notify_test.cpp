// Notifications from a real reporter to a local HTTP receiver and to a command: one per
// event, also when the receiver fails first; a receiver that hangs delays nothing else;
// what was not delivered before a restart is delivered once after it.
#include <gtest/gtest.h>

#include <set>

#include "ci/sqlite.h"
#include "reporter_fixture.h"

namespace ci::reporter::test_peer {
namespace {

using namespace std::chrono_literals;

JobInfo done(JobId id, const std::string& commit, TestStatus status) {
  JobInfo job = make_job(id, commit, "master", "finished", "Alice");
  job.status = status;
  job.attempt = 1;
  return job;
}

// A notify command that runs `body` in a folder of its own under `staging` and then moves
// what it wrote into `out`: a file is in `out` only once it is complete, so a test that
// waits for the files there never reads one half-written.
std::string complete_files_in(const test::TempDir& out, const test::TempDir& staging,
                              const std::string& body) {
  std::string dir = "'" + staging.path() + "'/\"$CI_DELIVERY_ID\"";
  return "mkdir -p " + dir + " && cd " + dir + " && { " + body + "; } && mv -- * '" + out.path() +
         "'/";
}

class NotifyTest : public ReporterTest {
 protected:
  ReporterOptions notifying(std::vector<std::string> webhooks,
                            std::vector<std::string> commands = {}) {
    ReporterOptions o = options();
    o.notify.webhooks = std::move(webhooks);
    o.notify.commands = std::move(commands);
    o.notify.retry_initial = 10ms;
    o.notify.retry_max = 50ms;
    o.notify.max_attempts = 1000;
    o.notify.timeout = 30s;
    return o;
  }

  int64_t outbox_rows() {
    auto db = sql::Database::open(dir / "reporter.db");
    auto s = db->prepare("SELECT COUNT(*) FROM outbox");
    auto row = s->step();
    return row.ok() && *row ? s->column_int(0) : -1;
  }

  // Job 1 passes, job 2 fails: job.finished twice and branch.failing once.
  void pass_then_fail() {
    feed.add(finished(done(1, "c1", TestStatus::Passed), {}));
    feed.add(finished(done(2, "c2", TestStatus::Failed), {}));
  }

  static std::set<std::string> ids(const std::vector<std::string>& bodies) {
    std::set<std::string> out;
    for (const auto& b : bodies) out.insert(nlohmann::json::parse(b)["id"].get<std::string>());
    return out;
  }
};

TEST_F(NotifyTest, EachEventIsDeliveredOnceEvenWhenTheReceiverFailsFirst) {
  WebhookReceiver receiver([](size_t n) { return n < 2 ? 500 : 200; });
  feed.start();
  start_reporter(notifying({receiver.url()}));
  pass_then_fail();
  ASSERT_TRUE(
      test::wait_until([&] { return receiver.accepted().size() == 3 && outbox_rows() == 0; }));
  auto bodies = receiver.accepted();
  EXPECT_EQ(ids(bodies),
            (std::set<std::string>{"1.job.finished", "2.job.finished", "2.branch.failing"}));
  EXPECT_EQ(receiver.requests(), 5u);
  for (const auto& b : bodies) {
    auto body = nlohmann::json::parse(b);
    if (body["event"] != "branch.failing") continue;
    EXPECT_EQ(body["from"], "passing");
    EXPECT_EQ(body["broken_by"]["commit"], sha("c2"));
    EXPECT_EQ(body["broken_by"]["author"], "Alice");
  }
}

TEST_F(NotifyTest, AHangingReceiverDelaysNeitherTheFeedNorOtherTargets) {
  WebhookReceiver hanging([](size_t) { return 0; });
  test::TempDir out;
  std::string command = "cat > '" + out.path() + "'/\"$CI_DELIVERY_ID\"";
  feed.start();
  start_reporter(notifying({hanging.url()}, {command}));
  pass_then_fail();
  for (JobId id = 3; id <= 20; ++id)
    feed.add(job_event(EventKind::JobQueued,
                       make_job(id, "c" + std::to_string(id), "master", "queued")));
  ASSERT_TRUE(jobs_listed(20));
  // The command target gets all three while the webhook still hangs on the first.
  ASSERT_TRUE(test::wait_until([&] { return test::list_dir(out.path()).size() == 3; }));
  // The webhook's first request may reach the receiver after the command ran: wait for
  // it, then there is that one and no other.
  ASSERT_TRUE(test::wait_until([&] { return hanging.requests() > 0; }));
  EXPECT_EQ(hanging.requests(), 1u);
  hanging.close();
  reporter.reset();
}

TEST_F(NotifyTest, ACommandGetsTheEventInItsEnvironmentAndOnStdin) {
  test::TempDir out, staging;
  std::string command = complete_files_in(
      out, staging,
      "cat > \"$CI_DELIVERY_ID.json\"; printf '%s|%s|%s|%s|%s' \"$CI_EVENT\" \"$CI_JOB_ID\" "
      "\"$CI_BRANCH\" \"$CI_STATUS\" \"$CI_COMMIT\" > \"$CI_DELIVERY_ID.env\"");
  feed.start();
  start_reporter(notifying({}, {command}));
  feed.add(finished(done(1, "c1", TestStatus::Failed), {}));
  ASSERT_TRUE(test::wait_until(
      [&] { return outbox_rows() == 0 && test::list_dir(out.path()).size() == 2; }));
  EXPECT_EQ(test::read_text(out / "1.job.finished.env"),
            "job.finished|1|master|failed|" + sha("c1"));
  auto body = nlohmann::json::parse(test::read_text(out / "1.job.finished.json"));
  EXPECT_EQ(body["job"]["id"], 1);
}

TEST_F(NotifyTest, ANamedRepositorysNotificationsCarryIt) {
  WebhookReceiver receiver([](size_t) { return 200; });
  test::TempDir out, staging;
  std::string command = complete_files_in(
      out, staging,
      "printf '%s|%s|%s' \"$CI_REPO\" \"$CI_BRANCH\" \"$CI_BRANCH_STATE\" > \"$CI_DELIVERY_ID\"");
  feed.start();
  start_reporter(notifying({receiver.url()}, {command}));
  JobInfo passed = done(1, "c1", TestStatus::Passed), failed = done(2, "c2", TestStatus::Failed);
  passed.repo = failed.repo = "fork";
  feed.add(finished(passed, {}));
  feed.add(finished(failed, {}));
  // And the default repository's: CI_REPO empty.
  feed.add(finished(done(3, "c3", TestStatus::Passed), {}));
  ASSERT_TRUE(test::wait_until(
      [&] { return receiver.accepted().size() == 4 && test::list_dir(out.path()).size() == 4; }));
  for (const auto& text : receiver.accepted()) {
    auto body = nlohmann::json::parse(text);
    bool fork = body["job"]["id"] != 3;
    EXPECT_EQ(body["job"]["repo"], fork ? "fork" : "") << text;
    if (body["event"] == "branch.failing") {
      EXPECT_EQ(body["repo"], "fork");
    }
  }
  EXPECT_EQ(test::read_text(out / "2.branch.failing"), "fork|master|failing");
  EXPECT_EQ(test::read_text(out / "2.job.finished"), "fork|master|");
  EXPECT_EQ(test::read_text(out / "3.job.finished"), "|master|");
}

TEST_F(NotifyTest, WhatARestartInterruptedIsDeliveredOnceAfterIt) {
  std::atomic<bool> up{false};
  WebhookReceiver receiver([&](size_t) { return up ? 200 : 503; });
  feed.start();
  start_reporter(notifying({receiver.url()}));
  pass_then_fail();
  ASSERT_TRUE(jobs_listed(2));
  ASSERT_TRUE(test::wait_until([&] { return receiver.requests() >= 2; }));
  reporter.reset();  // stopped with all three undelivered
  EXPECT_EQ(outbox_rows(), 3);
  up = true;
  start_reporter(notifying({receiver.url()}));
  ASSERT_TRUE(test::wait_until([&] { return outbox_rows() == 0; }));
  auto bodies = receiver.accepted();
  EXPECT_EQ(bodies.size(), 3u);
  EXPECT_EQ(ids(bodies).size(), 3u);
  // The feed was not applied again: no new notification.
  feed.add(job_event(EventKind::JobQueued, make_job(3, "c3", "master", "queued")));
  ASSERT_TRUE(jobs_listed(3));
  EXPECT_EQ(outbox_rows(), 0);
  EXPECT_EQ(receiver.accepted().size(), 3u);
}

}  // namespace
}  // namespace ci::reporter::test_peer
