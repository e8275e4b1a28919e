// The store on SQLite: in memory for the logic, on disk for reopening.
#include <gtest/gtest.h>

#include "dispatcher/sqlite_store.h"
#include "test_support.h"

namespace ci {
namespace {

Job make_job(JobId id, char c, JobState state) {
  Job j;
  j.id = id;
  j.commit = std::string(40, c);
  j.branch = "master";
  j.state = state;
  return j;
}

TEST(Store, SavesAndLoadsJobsAndRunners) {
  auto store = open_sqlite_store(":memory:", SyncMode::Normal);
  ASSERT_TRUE(store.ok()) << store.error();
  Job queued = make_job(1, 'a', JobState::Queued);
  Job running = make_job(2, 'b', JobState::Running);
  running.attempt = 2;
  running.runners = {"127.0.0.1:8900", "127.0.0.1:8901"};
  running.infra_failures = 1;
  Job done = make_job(3, 'c', JobState::Finished);
  done.attempt = 1;
  done.runners = {"127.0.0.1:8900"};
  JobOutcome out;
  out.status = TestStatus::Failed;
  out.tests_run = 2;
  out.tests_failed = 1;
  out.duration_ms = 81;
  out.runner = "127.0.0.1:8900";
  out.attempt = 1;
  done.outcome = out;
  ASSERT_TRUE((*store)
                  ->save({&queued, &running, &done}, {"127.0.0.1:8900", "127.0.0.1:8901"}, {}, {})
                  .ok());
  ASSERT_TRUE((*store)->save({}, {}, {"127.0.0.1:8901"}, {}).ok());

  auto loaded = (*store)->load();
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  ASSERT_EQ(loaded->jobs.size(), 3u);
  EXPECT_EQ(loaded->jobs[0].state, JobState::Queued);
  EXPECT_FALSE(loaded->jobs[0].outcome);
  EXPECT_EQ(loaded->jobs[1].runners, running.runners);
  EXPECT_EQ(loaded->jobs[1].attempt, 2u);
  EXPECT_EQ(loaded->jobs[1].infra_failures, 1u);
  ASSERT_TRUE(loaded->jobs[2].outcome);
  EXPECT_EQ(loaded->jobs[2].outcome->status, TestStatus::Failed);
  EXPECT_EQ(loaded->jobs[2].outcome->tests_failed, 1);
  EXPECT_EQ(loaded->jobs[2].outcome->duration_ms, 81u);
  EXPECT_EQ(loaded->runners, std::vector<StoredRunner>{"127.0.0.1:8900"});
}

TEST(Store, UpdatesAJobInPlaceAndClearsItsResultOnRetry) {
  auto store = open_sqlite_store(":memory:", SyncMode::Normal);
  ASSERT_TRUE(store.ok());
  Job job = make_job(1, 'a', JobState::Finished);
  job.outcome = JobOutcome{};
  ASSERT_TRUE((*store)->save({&job}, {}, {}, {}).ok());
  job.state = JobState::Queued;
  job.outcome.reset();
  ASSERT_TRUE((*store)->save({&job}, {}, {}, {}).ok());
  auto loaded = (*store)->load();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->jobs.size(), 1u);
  EXPECT_EQ(loaded->jobs[0].state, JobState::Queued);
  EXPECT_FALSE(loaded->jobs[0].outcome);
}

TEST(Store, SurvivesReopeningOnDisk) {
  test::TempDir dir;
  std::string path = dir / "state.db";
  {
    auto store = open_sqlite_store(path, SyncMode::Full);
    ASSERT_TRUE(store.ok()) << store.error();
    Job job = make_job(5, 'e', JobState::Queued);
    ASSERT_TRUE((*store)->save({&job}, {"h:1"}, {}, {}).ok());
  }
  auto store = open_sqlite_store(path, SyncMode::Normal);
  ASSERT_TRUE(store.ok()) << store.error();
  auto loaded = (*store)->load();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->jobs.size(), 1u);
  EXPECT_EQ(loaded->jobs[0].id, 5u);
  EXPECT_EQ(loaded->runners, std::vector<StoredRunner>{"h:1"});
}

TEST(Store, RefusesADatabaseFromANewerVersion) {
  test::TempDir dir;
  std::string path = dir / "state.db";
  ASSERT_TRUE(open_sqlite_store(path, SyncMode::Normal).ok());
  test::run({"python3", "-c",
             "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
             "c.execute(\"UPDATE meta SET value='99' WHERE key='schema_version'\"); c.commit()",
             path});
  auto store = open_sqlite_store(path, SyncMode::Normal);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().find("schema version 99"), std::string::npos) << store.error();
}

TEST(Store, NotADatabaseIsAClearError) {
  test::TempDir dir;
  std::string path = dir / "state.db";
  test::run({"sh", "-c", "echo 'not a database at all, just some text to fill a page' > " + path});
  auto store = open_sqlite_store(path, SyncMode::Normal);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().find(path), std::string::npos) << store.error();
}

}  // namespace
}  // namespace ci
