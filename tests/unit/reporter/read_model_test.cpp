// The read model on a real SQLite file: events applied exactly once (a replayed reply,
// a reopened file), snapshots overlapping the events after them, broken-by, flaky
// tests, branch state changes and their notifications.
#include "reporter/read_model.h"

#include <gtest/gtest.h>

#include "ci/sqlite.h"
#include "fake_feed.h"
#include "reporter/json.h"
#include "reporter/queries.h"
#include "test_support.h"

namespace ci::reporter {
namespace {

using namespace test_peer;

// Events numbered from 1 as a feed would.
class Feed {
 public:
  FeedEvent add(FeedEvent e) {
    e.seq = ++seq_;
    e.time_ms = 1000 + static_cast<int64_t>(seq_);
    if (e.kind != EventKind::RunnerJoined && e.kind != EventKind::RunnerLeft &&
        e.kind != EventKind::JobLog)
      e.job.seq = seq_;
    return e;
  }

 private:
  uint64_t seq_ = 0;
};

JobInfo finished_job(JobId id, const std::string& commit, TestStatus status,
                     const std::string& branch = "master", uint32_t attempt = 1) {
  JobInfo job = make_job(id, commit, branch, "finished", "Author " + commit);
  job.status = status;
  job.attempt = attempt;
  job.runner = "127.0.0.1:8900";
  return job;
}

class ReadModelTest : public ::testing::Test {
 protected:
  void SetUp() override { open({"webhook http://127.0.0.1:1/hook"}); }

  void open(std::vector<std::string> targets) {
    model.reset();
    auto m = ReadModel::open(path, std::move(targets));
    ASSERT_TRUE(m.ok()) << m.error();
    model = std::move(*m);
    auto q = Queries::open(path);
    ASSERT_TRUE(q.ok()) << q.error();
    queries = std::move(*q);
  }

  ApplyResult apply(const std::vector<FeedEvent>& events) {
    auto r = model->apply(events);
    EXPECT_TRUE(r.ok()) << r.error();
    return r.ok() ? *r : ApplyResult{};
  }

  std::vector<std::string> outbox() {
    auto db = sql::Database::open(path);
    auto s = db->prepare("SELECT body FROM outbox ORDER BY id");
    std::vector<std::string> rows;
    for (auto row = s->step(); row.ok() && *row; row = s->step()) rows.push_back(s->column_text(0));
    return rows;
  }

  nlohmann::json tests_of(JobId id) {
    auto job = queries->job(id);
    EXPECT_TRUE(job.ok() && *job);
    auto t = queries->tests(**job, (*job)->attempt);
    EXPECT_TRUE(t.ok()) << t.error();
    return *t;
  }

  test::TempDir dir;
  std::string path = dir / "reporter.db";
  std::unique_ptr<ReadModel> model;
  std::unique_ptr<Queries> queries;
  Feed feed;
};

TEST_F(ReadModelTest, AppliesEachEventOnceWhenARepliedBatchComesAgain) {
  std::vector<FeedEvent> events = {
      feed.add(runner_event(EventKind::RunnerJoined, "127.0.0.1:8900")),
      feed.add(job_event(EventKind::JobQueued, make_job(1, "c1", "master", "queued"))),
      feed.add(finished(finished_job(1, "c1", TestStatus::Passed),
                        {test_case("t.a", CaseOutcome::Passed)})),
  };
  EXPECT_EQ(apply(events).applied.size(), 3u);
  EXPECT_EQ(*model->last_seq(), 3u);
  size_t notified = outbox().size();
  EXPECT_EQ(notified, 1u);  // job.finished; a first state of a branch is no change

  // The same reply again (a retry after a lost answer), and a reopened file.
  EXPECT_TRUE(apply(events).applied.empty());
  open({"webhook http://127.0.0.1:1/hook"});
  EXPECT_TRUE(apply(events).applied.empty());
  EXPECT_EQ(*model->last_seq(), 3u);
  EXPECT_EQ(outbox().size(), notified);
  auto list = queries->jobs({});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ((*list)["jobs"].size(), 1u);
  EXPECT_EQ((*list)["jobs"][0]["status"], "passed");
}

TEST_F(ReadModelTest, ASnapshotAndTheEventsAfterItOverlapWithoutGoingBack) {
  JobInfo newer = finished_job(7, "c7", TestStatus::Failed);
  newer.seq = 20;
  ASSERT_TRUE(
      model->apply_snapshot({newer}, {{7, {test_case("t.a", CaseOutcome::Failed)}}}, 15).ok());
  EXPECT_EQ(*model->last_seq(), 15u);
  // Events after the snapshot's seq that are older than the job's row: no change.
  FeedEvent started = job_event(EventKind::JobStarted, make_job(7, "c7", "master", "running"));
  started.seq = started.job.seq = 16;
  auto r = apply({started});
  EXPECT_TRUE(r.applied.empty());
  EXPECT_EQ(*model->last_seq(), 16u);
  auto job = queries->job(7);
  ASSERT_TRUE(job.ok() && *job);
  EXPECT_EQ((*job)->state, "finished");
  EXPECT_EQ(tests_of(7)["cases"].size(), 1u);
  // A newer one changes it.
  JobInfo again = finished_job(7, "c7", TestStatus::Passed, "master", 2);
  FeedEvent retried = finished(again, {test_case("t.a", CaseOutcome::Passed)});
  retried.seq = retried.job.seq = 21;
  EXPECT_EQ(apply({retried}).applied.size(), 1u);
  EXPECT_EQ(*(*queries->job(7))->status, TestStatus::Passed);
  EXPECT_TRUE(outbox().size() >= 1u);
}

TEST_F(ReadModelTest, EveryFailingJobNamesTheCommitThatBrokeTheTest) {
  std::vector<FeedEvent> events;
  auto add_finished = [&](JobId id, const std::string& commit, CaseOutcome t_outcome,
                          const std::string& branch = "master") {
    TestStatus status = t_outcome == CaseOutcome::Passed ? TestStatus::Passed : TestStatus::Failed;
    events.push_back(feed.add(
        finished(finished_job(id, commit, status, branch),
                 {test_case("t.a", t_outcome), test_case("t.steady", CaseOutcome::Passed)})));
  };
  add_finished(1, "c1", CaseOutcome::Passed);
  add_finished(2, "C", CaseOutcome::Failed);
  add_finished(3, "other-branch", CaseOutcome::Passed, "feature");
  add_finished(4, "c3", CaseOutcome::Failed);
  add_finished(5, "c4", CaseOutcome::Error);
  add_finished(6, "c5", CaseOutcome::Failed);
  apply(events);

  JobId failing[] = {2, 4, 5, 6};
  for (size_t i = 0; i < 4; ++i) {
    auto tests = tests_of(failing[i]);
    SCOPED_TRACE("job " + std::to_string(failing[i]));
    ASSERT_EQ(tests["cases"].size(), 2u);
    const auto& first = tests["cases"][0];  // failures first
    EXPECT_EQ(first["name"], "t.a");
    EXPECT_EQ(first["broken_by"]["commit"], sha("C"));
    EXPECT_EQ(first["broken_by"]["author"], "Author C");
    EXPECT_EQ(first["broken_by"]["job"], 2);
    EXPECT_EQ(first["broken_by"]["commits_ago"], static_cast<int>(i));
    EXPECT_FALSE(tests["cases"][1].contains("broken_by"));
  }
  auto history = queries->history("", "master", "t.a", 3);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ((*history)["runs"].size(), 3u);
  EXPECT_EQ((*history)["runs"][0]["job"], 6);
  EXPECT_EQ((*history)["runs"][1]["outcome"], "error");

  // The branch went failing at C, once; the notification names C.
  auto rows = outbox();
  int changes = 0;
  for (const auto& text : rows) {
    auto body = nlohmann::json::parse(text);
    if (body["event"] != "branch.failing") continue;
    ++changes;
    EXPECT_EQ(body["broken_by"]["commit"], sha("C"));
    EXPECT_EQ(body["from"], "passing");
  }
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(*queries->branch_state("", "master"), "failing");
  EXPECT_EQ(*queries->branch_state("", "feature"), "passing");
  EXPECT_EQ(*queries->branch_state("", "nothing"), "unknown");
}

TEST_F(ReadModelTest, ABranchIsFailingSinceItsFirstFailingJobWhateverOrderTheyFinishIn) {
  auto since = [&]() -> nlohmann::json {
    auto branches = queries->branches(std::nullopt);
    EXPECT_TRUE(branches.ok());
    return branches.ok() ? (*branches)[0]["since"]["job"] : nlohmann::json();
  };
  // On two runners job 3 finishes before job 2, the commit that broke the branch.
  apply({feed.add(finished(finished_job(1, "c1", TestStatus::Passed), {})),
         feed.add(finished(finished_job(3, "c3", TestStatus::Failed), {}))});
  EXPECT_EQ(since(), 3);
  apply({feed.add(finished(finished_job(2, "C", TestStatus::Failed), {}))});
  EXPECT_EQ(*queries->branch_state("", "master"), "failing");
  EXPECT_EQ(since(), 2);
  // A late failure before the fix does not move the passing streak back.
  apply({feed.add(finished(finished_job(5, "fix", TestStatus::Passed), {})),
         feed.add(finished(finished_job(4, "c4", TestStatus::Failed), {}))});
  EXPECT_EQ(*queries->branch_state("", "master"), "passing");
  EXPECT_EQ(since(), 5);
}

TEST_F(ReadModelTest, ATestThatPassedAndFailedOnOneCommitIsFlaky) {
  apply({feed.add(finished(finished_job(1, "c1", TestStatus::Failed),
                           {test_case("t.flaky", CaseOutcome::Failed),
                            test_case("t.broken", CaseOutcome::Failed)})),
         feed.add(finished(finished_job(1, "c1", TestStatus::Failed, "master", 2),
                           {test_case("t.flaky", CaseOutcome::Passed),
                            test_case("t.broken", CaseOutcome::Failed)}))});
  auto tests = tests_of(1);
  ASSERT_EQ(tests["attempt"], 2);
  for (const auto& c : tests["cases"]) EXPECT_EQ(c["flaky"], c["name"] == "t.flaky") << c.dump();
}

TEST_F(ReadModelTest, RunnersFollowTheirJobs) {
  JobInfo running = make_job(1, "c1", "master", "running");
  running.runner = "r:1";
  JobInfo done = finished_job(1, "c1", TestStatus::Passed);
  done.runner = "r:1";
  apply({feed.add(runner_event(EventKind::RunnerJoined, "r:1")),
         feed.add(job_event(EventKind::JobStarted, running))});
  auto runners = queries->runners();
  ASSERT_TRUE(runners.ok());
  EXPECT_EQ((*runners)[0]["state"], "busy");
  EXPECT_EQ((*runners)[0]["job"], 1);
  apply({feed.add(finished(done, {})), feed.add(runner_event(EventKind::RunnerLeft, "r:1"))});
  EXPECT_EQ((*queries->runners())[0]["state"], "left");
  auto counts = queries->counts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->runners_by_state["left"], 1);
  EXPECT_EQ(counts->jobs_by_status["passed"], 1);
}

TEST_F(ReadModelTest, ARunnerOfTwoSlotsIsBusyUntilBothItsJobsEnd) {
  auto running = [](JobId id) {
    JobInfo job = make_job(id, "c" + std::to_string(id), "master", "running");
    job.runner = "r:1";
    return job;
  };
  auto ended = [](JobId id) {
    JobInfo job = finished_job(id, "c" + std::to_string(id), TestStatus::Passed);
    job.runner = "r:1";
    return job;
  };
  auto runner = [&] { return (*queries->runners())[0]; };
  apply({feed.add(runner_event(EventKind::RunnerJoined, "r:1")),
         feed.add(job_event(EventKind::JobStarted, running(1))),
         feed.add(job_event(EventKind::JobStarted, running(2)))});
  EXPECT_EQ(runner()["state"], "busy");
  EXPECT_EQ(runner()["job"], 2);
  apply({feed.add(finished(ended(2), {}))});
  EXPECT_EQ(runner()["state"], "busy");
  EXPECT_EQ(runner()["job"], 1);
  apply({feed.add(job_event(EventKind::JobStarted, running(3))), feed.add(finished(ended(1), {}))});
  EXPECT_EQ(runner()["job"], 3);
  apply({feed.add(finished(ended(3), {}))});
  EXPECT_EQ(runner()["state"], "idle");
  EXPECT_EQ(runner()["job"], nullptr);
}

TEST_F(ReadModelTest, TextThatIsNotUtf8IsShownReplaced) {
  JobInfo job = finished_job(1, "c1", TestStatus::Failed);
  job.commit_info.subject = "bad \xff\xfe byte";
  apply({feed.add(finished(job, {test_case("t.\xc3", CaseOutcome::Failed)}))});
  auto list = queries->jobs({});
  ASSERT_TRUE(list.ok());
  std::string text = json_text(*list);
  EXPECT_NE(text.find("bad \xef\xbf\xbd"), std::string::npos) << text;
  EXPECT_NO_THROW(json_text(tests_of(1)));
}

JobInfo in_repo(JobInfo job, const std::string& repo) {
  job.repo = repo;
  return job;
}

TEST_F(ReadModelTest, ACommitInTwoRepositoriesIsTwoJobsWithTheirOwnBranchesAndTests) {
  // An upstream (the default repository) and its fork share commit c1 and branch master.
  apply({feed.add(finished(finished_job(1, "c0", TestStatus::Passed),
                           {test_case("t.a", CaseOutcome::Passed)})),
         feed.add(finished(finished_job(2, "c1", TestStatus::Failed),
                           {test_case("t.a", CaseOutcome::Failed)})),
         feed.add(finished(in_repo(finished_job(3, "c1", TestStatus::Passed), "fork"),
                           {test_case("t.a", CaseOutcome::Passed)}))});
  auto all = queries->jobs({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ((*all)["jobs"].size(), 3u);
  EXPECT_EQ((*all)["jobs"][0]["repo"], "fork");
  EXPECT_EQ((*all)["jobs"][1]["repo"], "");
  JobFilter fork;
  fork.repo = "fork";
  auto forks = queries->jobs(fork);
  ASSERT_TRUE(forks.ok());
  ASSERT_EQ((*forks)["jobs"].size(), 1u);
  EXPECT_EQ((*forks)["jobs"][0]["id"], 3);
  JobFilter upstream;
  upstream.repo = "";
  EXPECT_EQ((*queries->jobs(upstream))["jobs"].size(), 2u);
  EXPECT_EQ((*queries->commit(sha("c1"), std::nullopt))["jobs"].size(), 2u);
  EXPECT_EQ((*queries->commit(sha("c1"), "fork"))["jobs"][0]["id"], 3);

  // Each repository's master has its own state, history and broken-by; the fork's pass
  // does not make the upstream's failure flaky.
  EXPECT_EQ(*queries->branch_state("", "master"), "failing");
  EXPECT_EQ(*queries->branch_state("fork", "master"), "passing");
  EXPECT_EQ(*queries->branch_state("other", "master"), "unknown");
  auto tests = tests_of(2);
  ASSERT_EQ(tests["cases"].size(), 1u);
  EXPECT_EQ(tests["cases"][0]["flaky"], false);
  EXPECT_EQ(tests["cases"][0]["broken_by"]["job"], 2);
  EXPECT_EQ((*queries->history("fork", "master", "t.a", 10))["runs"].size(), 1u);
  EXPECT_EQ((*queries->history("", "master", "t.a", 10))["runs"].size(), 2u);

  auto branches = queries->branches(std::nullopt);
  ASSERT_TRUE(branches.ok());
  ASSERT_EQ(branches->size(), 2u);
  EXPECT_EQ((*branches)[0]["repo"], "");
  EXPECT_EQ((*branches)[0]["state"], "failing");
  EXPECT_EQ((*branches)[0]["latest"]["id"], 2);
  EXPECT_EQ((*branches)[1]["repo"], "fork");
  EXPECT_EQ((*branches)[1]["state"], "passing");
  EXPECT_EQ((*queries->branches("fork"))[0]["latest"]["id"], 3);

  auto repos = queries->repos();
  ASSERT_TRUE(repos.ok());
  ASSERT_EQ(repos->size(), 2u);
  EXPECT_EQ((*repos)[0]["name"], "");
  EXPECT_EQ((*repos)[0]["jobs"], 2);
  EXPECT_EQ((*repos)[0]["failed"], 1);
  EXPECT_EQ((*repos)[0]["branches"][0]["state"], "failing");
  EXPECT_EQ((*repos)[1]["name"], "fork");
  EXPECT_EQ((*repos)[1]["passed"], 1);
  EXPECT_EQ((*repos)[1]["branches"][0]["name"], "master");
  EXPECT_EQ((*repos)[1]["branches"][0]["latest"]["id"], 3);

  // The upstream's branch went failing (notified with its repository); the fork's did not.
  int changes = 0;
  for (const auto& text : outbox()) {
    auto body = nlohmann::json::parse(text);
    if (body["event"] != "branch.failing") continue;
    ++changes;
    EXPECT_EQ(body["repo"], "");
  }
  EXPECT_EQ(changes, 1);
  apply({feed.add(finished(in_repo(finished_job(4, "c2", TestStatus::Failed), "fork"), {}))});
  auto rows = outbox();
  auto last = nlohmann::json::parse(rows.back());
  EXPECT_EQ(last["event"], "branch.failing");
  EXPECT_EQ(last["repo"], "fork");
  EXPECT_EQ(last["job"]["repo"], "fork");
}

TEST_F(ReadModelTest, ARepeatedJobQueuedUpdatesWhyTheJobWaits) {
  JobInfo job = in_repo(make_job(1, "c1", "master", "queued"), "lib");
  job.required = {"gpu", "linux"};
  job.waiting = "waiting for a runner with gpu";
  EXPECT_EQ(apply({feed.add(job_event(EventKind::JobQueued, job))}).applied.size(), 1u);
  auto shown = queries->job(1);
  ASSERT_TRUE(shown.ok() && *shown);
  EXPECT_EQ((*shown)->waiting, "waiting for a runner with gpu");
  EXPECT_EQ((*shown)->required, (std::vector<std::string>{"gpu", "linux"}));
  EXPECT_EQ((*shown)->repo, "lib");
  EXPECT_EQ(queries->counts()->waiting_by_repo["lib"], 1);

  // A runner with gpu joined: the same job queued again, now without a reason.
  job.waiting = "";
  EXPECT_EQ(apply({feed.add(job_event(EventKind::JobQueued, job))}).applied.size(), 1u);
  auto list = queries->jobs({});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ((*list)["jobs"].size(), 1u);
  EXPECT_EQ((*list)["jobs"][0]["waiting"], "");
  EXPECT_EQ((*list)["jobs"][0]["required"], nlohmann::json::array({"gpu", "linux"}));
  auto counts = queries->counts();
  EXPECT_EQ(counts->waiting_by_repo.count("lib"), 0u);
  EXPECT_EQ(counts->queued_by_repo["lib"], 1);
  EXPECT_EQ(counts->jobs_by_state["queued"], 1);
  EXPECT_EQ((*queries->repos())[0]["queued"], 1);
}

// The read model as the previous version made it: one repository, no user_version.
constexpr char kVersion0Schema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, commit_id TEXT NOT NULL,
  branch TEXT NOT NULL, author TEXT NOT NULL, email TEXT NOT NULL, subject TEXT NOT NULL,
  commit_time INTEGER NOT NULL, state TEXT NOT NULL, status TEXT, attempt INTEGER NOT NULL,
  runner TEXT NOT NULL, tests_run INTEGER NOT NULL, tests_failed INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL, queued_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL, reason TEXT NOT NULL, log_size INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_by_branch ON jobs(branch, id);
CREATE INDEX IF NOT EXISTS jobs_by_commit ON jobs(commit_id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE TABLE IF NOT EXISTS cases(
  job INTEGER NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
  outcome TEXT NOT NULL, ms INTEGER NOT NULL, message TEXT NOT NULL, branch TEXT NOT NULL,
  PRIMARY KEY(job, attempt, name));
CREATE INDEX IF NOT EXISTS cases_history ON cases(branch, name, job);
CREATE TABLE IF NOT EXISTS runners(
  address TEXT PRIMARY KEY, state TEXT NOT NULL, job INTEGER NOT NULL,
  joined_ms INTEGER NOT NULL, left_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS branches(
  name TEXT PRIMARY KEY, state TEXT NOT NULL, job INTEGER NOT NULL, since_job INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_by_target ON outbox(target, id);
INSERT OR IGNORE INTO meta(key, value) VALUES('last_seq', 0);
)sql";

TEST_F(ReadModelTest, AReadModelOfThePreviousVersionIsMigratedInPlace) {
  path = dir / "old.db";
  {
    auto db = sql::Database::open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->exec(kVersion0Schema).ok());
    ASSERT_TRUE(db->exec("INSERT INTO jobs VALUES(1, 3, '" + sha("c1") +
                         "', 'master', 'Alice', 'a@example.com', 'First', 0, 'finished', "
                         "'failed', 1, 'r:1', 1, 1, 10, 1, 2, 3, '', 55);"
                         "INSERT INTO cases VALUES(1, 1, 't.a', 'failed', 3, 'boom', 'master');"
                         "INSERT INTO branches VALUES('master', 'failing', 1, 1);"
                         "UPDATE meta SET value = 3 WHERE key = 'last_seq';")
                    .ok());
  }
  open({"webhook http://127.0.0.1:1/hook"});
  EXPECT_EQ(*model->last_seq(), 3u);
  auto job = queries->job(1);
  ASSERT_TRUE(job.ok() && *job) << job.error();
  EXPECT_EQ((*job)->repo, "");
  EXPECT_EQ((*job)->commit_info.subject, "First");
  EXPECT_EQ(*queries->branch_state("", "master"), "failing");
  EXPECT_EQ(tests_of(1)["cases"][0]["broken_by"]["job"], 1);

  // It goes on from there: the fix passes master, a fork's job is its own.
  for (int i = 0; i < 3; ++i) feed.add(FeedEvent{});  // the feed is past seq 3
  apply({feed.add(finished(finished_job(2, "c2", TestStatus::Passed), {})),
         feed.add(finished(in_repo(finished_job(3, "c2", TestStatus::Failed), "fork"), {}))});
  EXPECT_EQ(*queries->branch_state("", "master"), "passing");
  EXPECT_EQ(*queries->branch_state("fork", "master"), "failing");
  EXPECT_EQ((*queries->branches(std::nullopt))[0]["since"]["job"], 2);

  // Opened again, it is not migrated twice.
  open({"webhook http://127.0.0.1:1/hook"});
  EXPECT_EQ((*queries->jobs({}))["jobs"].size(), 3u);
  auto db = sql::Database::open(path);
  auto version = db->prepare("PRAGMA user_version");
  ASSERT_TRUE(version.ok() && *version->step());
  EXPECT_EQ(version->column_int(0), 1);
}

}  // namespace
}  // namespace ci::reporter
