// Many repositories, runners of several slots and labels, and the fair queue: the
// scheduler's decisions with a fake clock, and the store and result files they need.
#include <gtest/gtest.h>

#include "ci/sqlite.h"
#include "dispatcher/result_writer.h"
#include "dispatcher/scheduler.h"
#include "dispatcher/sqlite_store.h"
#include "scheduler_offers.h"
#include "test_support.h"

namespace ci {
namespace {

std::string commit(int i) {
  char buf[41];
  std::snprintf(buf, sizeof buf, "%040x", i);
  return buf;
}

class ReposTest : public ::testing::Test {
 protected:
  Scheduler sched{Scheduler::Options{3, 3}};
  TimePoint now{};

  Offer offer_and_accept() { return ci::offer_and_accept(sched, now); }

  void finish(const Offer& o) {
    ASSERT_EQ(sched.check_result(o.job, o.attempt, o.runner), ResultVerdict::Accept);
    JobOutcome out;
    out.status = TestStatus::Passed;
    out.runner = o.runner;
    out.attempt = o.attempt;
    sched.finish_result(o.job, out, now);
  }

  void miss_pings(const std::string& runner) {
    for (int i = 0; i < 3; ++i)
      for (const auto& t : sched.ping_targets())
        if (t.runner == runner) sched.ping_missed(t, now);
  }

  static RunnerSpec slots(uint32_t n, RepoScope scope = RepoScope::Default,
                          std::vector<std::string> labels = {}) {
    return RunnerSpec{n, std::move(labels), scope};
  }
};

TEST(FairQueue, OneCommitOnBIsAmongTheNextTwoAfter500OnA) {
  Scheduler s{Scheduler::Options{3, 3}};
  TimePoint now{};
  s.set_repo({"a", "https://example.org/a.git", false});
  s.set_repo({"b", "https://example.org/b.git", false});
  s.register_runner("r:1", now, RunnerSpec{1, {}, RepoScope::Named});
  for (int i = 0; i < 500; ++i) s.submit(commit(i), "main", now, {}, "a");
  // One of A's is already running when B's arrives.
  auto first = s.next_offer(now);
  ASSERT_TRUE(first);
  s.offer_accepted(*first, now);
  auto b = s.submit(commit(1000), "main", now, {}, "b").id;
  std::vector<JobId> started;
  for (int i = 0; i < 2; ++i) {
    Offer o = *first;
    ASSERT_EQ(s.check_result(o.job, o.attempt, o.runner), ResultVerdict::Accept);
    JobOutcome out;
    out.status = TestStatus::Passed;
    out.runner = o.runner;
    out.attempt = o.attempt;
    s.finish_result(o.job, out, now);
    first = s.next_offer(now);
    ASSERT_TRUE(first);
    s.offer_accepted(*first, now);
    started.push_back(first->job);
  }
  EXPECT_NE(std::find(started.begin(), started.end(), b), started.end());
}

// The pure function, on a hand-made view.
TEST(FairQueue, RoundRobinAcrossRepositoriesThenBranchesOldestFirst) {
  QueueView view;
  auto add = [&](const std::string& repo, const std::string& branch, int64_t key, JobId id) {
    view.repos[repo].branches[branch].lanes[{}].jobs.emplace(key, id);
    view.size++;
  };
  add("", "main", 1, 1);
  add("", "main", 2, 2);
  add("", "dev", 3, 3);
  add("x", "main", 4, 4);
  auto any = [](const std::string&, const std::vector<std::string>&) { return true; };
  QueueCursor cursor;
  std::vector<JobId> order;
  while (auto pick = pick_next(view, cursor, any)) {
    order.push_back(pick->job);
    advance(cursor, *pick);
    auto& lanes = view.repos[pick->repo].branches[pick->branch].lanes;
    lanes[pick->lane].jobs.erase(pick->key);
    if (lanes[pick->lane].jobs.empty()) lanes.erase(pick->lane);
    if (lanes.empty()) view.repos[pick->repo].branches.erase(pick->branch);
    if (view.repos[pick->repo].branches.empty()) view.repos.erase(pick->repo);
  }
  // default repo (dev: oldest of its branches after none), x, default main, default main.
  EXPECT_EQ(order, (std::vector<JobId>{3, 4, 1, 2}));
}

TEST(FairQueue, NewestFirstButAGivenBackJobLeads) {
  QueueView view;
  auto& lane = view.repos["x"].branches["main"].lanes[{}];
  view.repos["x"].newest_first = true;
  lane.jobs = {{1, 10}, {2, 11}, {3, 12}};
  auto any = [](const std::string&, const std::vector<std::string>&) { return true; };
  EXPECT_EQ(pick_next(view, {}, any)->job, 12u);
  lane.jobs.emplace(-1, 99);  // given back
  EXPECT_EQ(pick_next(view, {}, any)->job, 99u);
  view.repos["x"].newest_first = false;
  lane.jobs.erase(-1);
  EXPECT_EQ(pick_next(view, {}, any)->job, 10u);
}

TEST(FairQueue, OnlyLanesTheRunnerCanTakeAreConsidered) {
  QueueView view;
  view.repos[""].branches["main"].lanes[{"gpu"}].jobs.emplace(1, 1);
  view.repos[""].branches["main"].lanes[{}].jobs.emplace(2, 2);
  auto no_gpu = [](const std::string&, const std::vector<std::string>& l) { return l.empty(); };
  EXPECT_EQ(pick_next(view, {}, no_gpu)->job, 2u);
  auto nothing = [](const std::string&, const std::vector<std::string>&) { return false; };
  EXPECT_FALSE(pick_next(view, {}, nothing));
}

TEST_F(ReposTest, TheSameCommitInTwoRepositoriesIsTwoJobs) {
  sched.set_repo({"fork", "u1", false});
  auto a = sched.submit(commit(1), "main", now, {}, "");
  auto b = sched.submit(commit(1), "main", now, {}, "fork");
  auto again = sched.submit(commit(1), "main", now, {}, "fork");
  EXPECT_TRUE(a.created);
  EXPECT_TRUE(b.created);
  EXPECT_NE(a.id, b.id);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.id, b.id);
}

TEST_F(ReposTest, ARunnerTakesOnlyTheRepositoryKindItServes) {
  sched.set_repo({"x", "https://example.org/x.git", false});
  auto named = sched.submit(commit(1), "main", now, {}, "x").id;
  sched.register_runner("d:1", now);  // default only
  EXPECT_FALSE(sched.next_offer(now));
  EXPECT_EQ(sched.job(named)->waiting, "waiting for a runner that serves named repositories");
  EXPECT_EQ(sched.count_waiting(), 1u);
  sched.register_runner("n:1", now, slots(1, RepoScope::Named));
  EXPECT_EQ(sched.job(named)->waiting, "");
  auto o = sched.next_offer(now);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->runner, "n:1");
  EXPECT_EQ(o->repo, "x");
  EXPECT_EQ(o->url, "https://example.org/x.git");
  // A default-repository job goes to the default runner, not to the named one.
  sched.submit(commit(2), "main", now);
  auto d = sched.next_offer(now);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->runner, "d:1");
  EXPECT_EQ(d->url, "");
}

TEST_F(ReposTest, ALabelledJobWaitsWithItsReasonUntilARunnerWithTheLabelJoins) {
  sched.register_runner("cpu:1", now, slots(1, RepoScope::Default, {"linux"}));
  auto id = sched.submit(commit(1), "main", now, {}, "", {"gpu"}).id;
  EXPECT_FALSE(sched.next_offer(now));
  EXPECT_EQ(sched.job(id)->waiting, "waiting for a runner with gpu");
  EXPECT_EQ(sched.job_info(*sched.job(id)).waiting, "waiting for a runner with gpu");
  sched.take_feed();
  sched.register_runner("gpu:1", now, slots(1, RepoScope::Default, {"gpu", "linux"}));
  // The feed hears that it no longer waits.
  auto feed = sched.take_feed();
  bool requeued = false;
  for (const auto& e : feed)
    requeued =
        requeued || (e.kind == EventKind::JobQueued && e.job.id == id && e.job.waiting == "");
  EXPECT_TRUE(requeued);
  auto o = sched.next_offer(now);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->runner, "gpu:1");
  EXPECT_EQ(sched.count_waiting(), 0u);
}

TEST_F(ReposTest, NoRunnerAtAllIsItsOwnReason) {
  auto id = sched.submit(commit(1), "main", now).id;
  EXPECT_EQ(sched.job(id)->waiting, "waiting for a runner");
  sched.register_runner("r:1", now);
  EXPECT_EQ(sched.job(id)->waiting, "");
  sched.unregister_runner("r:1", now);
  EXPECT_EQ(sched.job(id)->waiting, "waiting for a runner");
}

TEST_F(ReposTest, FourSlotsGetFourOffersAndNoFifth) {
  for (int i = 0; i < 6; ++i) sched.submit(commit(i), "main", now);
  sched.register_runner("r:1", now, slots(4));
  std::set<std::string> slot_keys;
  for (int i = 0; i < 4; ++i) slot_keys.insert(offer_and_accept().slot);
  EXPECT_EQ(slot_keys.size(), 4u);
  EXPECT_FALSE(sched.next_offer(now));
  EXPECT_EQ(sched.count_jobs(JobState::Running), 4u);
  EXPECT_EQ(sched.slots_of("r:1").size(), 4u);
}

TEST_F(ReposTest, AKilledRunnerGivesAllFourBackAndEachFinishesOnce) {
  for (int i = 0; i < 4; ++i) sched.submit(commit(i), "main", now);
  sched.register_runner("dies:1", now, slots(4));
  for (int i = 0; i < 4; ++i) offer_and_accept();
  miss_pings("dies:1");
  EXPECT_TRUE(sched.runners().empty());
  EXPECT_EQ(sched.queued(), 4u);
  for (const auto& [id, job] : sched.jobs()) EXPECT_EQ(job.infra_failures, 1u);
  sched.register_runner("other:1", now, slots(2));
  std::set<JobId> finished;
  while (sched.queued() > 0 || sched.count_jobs(JobState::Running) > 0) {
    std::vector<Offer> running;
    while (auto o = sched.next_offer(now)) {
      sched.offer_accepted(*o, now);
      running.push_back(*o);
    }
    ASSERT_FALSE(running.empty());
    for (const auto& o : running) {
      EXPECT_TRUE(finished.insert(o.job).second);
      finish(o);
    }
  }
  EXPECT_EQ(finished.size(), 4u);
  EXPECT_EQ(sched.count_jobs(JobState::Finished), 4u);
}

TEST_F(ReposTest, UnregisterGivesAllBackAtOnceUncounted) {
  for (int i = 0; i < 3; ++i) sched.submit(commit(i), "main", now);
  sched.register_runner("r:1", now, slots(3));
  for (int i = 0; i < 3; ++i) offer_and_accept();
  sched.unregister_runner("r:1", now);
  EXPECT_EQ(sched.queued(), 3u);
  for (const auto& [id, job] : sched.jobs()) EXPECT_EQ(job.infra_failures, 0u);
}

TEST_F(ReposTest, APongOfSlotsLosesAJobItNoLongerListsAndNotesWorkNotOurs) {
  sched.submit(commit(1), "main", now);
  sched.submit(commit(2), "main", now);
  sched.register_runner("r:1", now, slots(4));
  Offer kept = offer_and_accept();
  Offer lost = offer_and_accept();
  auto targets = sched.ping_targets();
  ASSERT_EQ(targets.size(), 1u);
  RunnerReport report;
  report.slots = std::vector<std::pair<JobId, uint32_t>>{{kept.job, kept.attempt}, {777, 1}};
  report.busy = true;
  sched.ping_answered(targets[0], report, now);
  EXPECT_EQ(sched.job(kept.job)->state, JobState::Running);
  EXPECT_EQ(sched.job(lost.job)->state, JobState::Queued);
  EXPECT_EQ(sched.job(lost.job)->infra_failures, 1u);
  size_t unknown = 0;
  for (const RunnerRecord* r : sched.slots_of("r:1"))
    unknown += r->state == RunnerState::BusyUnknown;
  EXPECT_EQ(unknown, 1u);
}

// A runner of 4 slots restarted on its port while 2 jobs ran: it registers again and
// takes new work, whose results keep coming. Those say nothing of the 2 jobs it forgot:
// it is still pinged, and its answer gives them back.
TEST_F(ReposTest, ARestartedRunnerOfSlotsIsPingedDespiteResultsAndGivesBackWhatItForgot) {
  for (int i = 0; i < 4; ++i) sched.submit(commit(i), "main", now);
  sched.register_runner("r:1", now, slots(4));
  Offer forgotten1 = offer_and_accept();
  Offer forgotten2 = offer_and_accept();
  now += std::chrono::seconds(5);
  sched.register_runner("r:1", now, slots(4));  // back after a restart
  Offer fresh = offer_and_accept();
  Offer quick = offer_and_accept();
  now += std::chrono::seconds(1);
  finish(quick);  // a result heard just now
  sched.release_runner(quick.runner, quick.job, quick.attempt, now);
  auto targets = sched.ping_targets(now - std::chrono::seconds(2));
  ASSERT_EQ(targets.size(), 1u);
  RunnerReport report;
  report.slots = std::vector<std::pair<JobId, uint32_t>>{{fresh.job, fresh.attempt}};
  report.busy = true;
  sched.ping_answered(targets[0], report, now);
  EXPECT_EQ(sched.job(fresh.job)->state, JobState::Running);
  EXPECT_EQ(sched.job(forgotten1.job)->state, JobState::Queued);
  EXPECT_EQ(sched.job(forgotten2.job)->state, JobState::Queued);
}

// A runner of one slot heard from since the last round is not pinged (1,000 runners
// cost a ping each only when quiet).
TEST_F(ReposTest, AOneSlotRunnerHeardFromLatelyIsNotPinged) {
  sched.submit(commit(1), "main", now);
  sched.register_runner("r:1", now);
  Offer o = offer_and_accept();
  now += std::chrono::seconds(1);
  finish(o);
  sched.release_runner(o.runner, o.job, o.attempt, now);
  EXPECT_TRUE(sched.ping_targets(now - std::chrono::seconds(2)).empty());
}

TEST_F(ReposTest, ReRegisteringWithOtherSlotsAndLabelsUpdatesTheRunner) {
  sched.register_runner("r:1", now);
  sched.take_dirty();
  sched.register_runner("r:1", now, slots(2, RepoScope::All, {"gpu"}));
  EXPECT_EQ(sched.slots_of("r:1").size(), 2u);
  EXPECT_EQ(sched.runners().at("r:1").spec.labels, std::vector<std::string>{"gpu"});
  auto dirty = sched.take_dirty();
  ASSERT_EQ(dirty.runners_added.size(), 1u);
  EXPECT_EQ(dirty.runners_added[0].spec.slots, 2u);
}

TEST(ReposStore, RepositoriesRunnersAndJobFieldsSurviveARestart) {
  test::TempDir dir;
  std::string path = dir / "state.db";
  Scheduler before{Scheduler::Options{3, 3}};
  TimePoint now{};
  before.set_repo({"x", "https://example.org/x.git", true});
  before.register_runner("r:1", now, RunnerSpec{3, {"gpu", "linux"}, RepoScope::All});
  auto id = before.submit(commit(1), "main", now, {}, "x", {"gpu"}).id;
  auto dirty = before.take_dirty();
  {
    auto store = open_sqlite_store(path, SyncMode::Normal);
    ASSERT_TRUE(store.ok()) << store.error();
    std::vector<const Job*> jobs;
    for (JobId j : dirty.jobs) jobs.push_back(before.job(j));
    ASSERT_TRUE(
        (*store)->save(jobs, dirty.runners_added, dirty.runners_removed, {}, dirty.repos).ok());
  }
  auto store = open_sqlite_store(path, SyncMode::Normal);
  ASSERT_TRUE(store.ok()) << store.error();
  auto loaded = (*store)->load();
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  ASSERT_EQ(loaded->repos.size(), 1u);
  EXPECT_EQ(loaded->repos[0], (Repository{"x", "https://example.org/x.git", true}));
  ASSERT_EQ(loaded->runners.size(), 1u);
  EXPECT_EQ(loaded->runners[0].spec, (RunnerSpec{3, {"gpu", "linux"}, RepoScope::All}));
  Scheduler after{Scheduler::Options{3, 3}};
  after.restore(loaded->jobs, loaded->runners, now, loaded->repos);
  ASSERT_TRUE(after.job(id));
  EXPECT_EQ(after.job(id)->repo, "x");
  EXPECT_EQ(after.job(id)->required, std::vector<std::string>{"gpu"});
  EXPECT_EQ(after.slots_of("r:1").size(), 3u);
  ASSERT_TRUE(after.repo("x"));
  EXPECT_TRUE(after.repo("x")->newest_first);
  // The same commit in another repository is still a new job.
  EXPECT_FALSE(after.submit(commit(1), "main", now, {}, "x").created);
  EXPECT_TRUE(after.submit(commit(1), "main", now).created);
}

// A database the previous version made (schema 2): it opens, keeps its jobs and
// runners, and they belong to the default repository.
TEST(ReposStore, AnOldDatabaseIsMigratedAndKeepsItsJobs) {
  test::TempDir dir;
  std::string path = dir / "state.db";
  {
    auto db = sql::Database::open(path);
    ASSERT_TRUE(db.ok()) << db.error();
    ASSERT_TRUE(db->exec(R"sql(
      CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
      INSERT INTO meta VALUES('schema_version', '2');
      CREATE TABLE jobs(
        id INTEGER PRIMARY KEY, commit_id TEXT NOT NULL, branch TEXT NOT NULL,
        state TEXT NOT NULL, attempt INTEGER NOT NULL, runners TEXT NOT NULL,
        infra_failures INTEGER NOT NULL, status TEXT, tests_run INTEGER,
        tests_failed INTEGER, duration_ms INTEGER, result_runner TEXT,
        result_attempt INTEGER, reason TEXT, created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL, finished_at INTEGER, UNIQUE(commit_id, branch));
      CREATE TABLE runners(address TEXT PRIMARY KEY, registered_at INTEGER NOT NULL);
      ALTER TABLE jobs ADD COLUMN info TEXT;
      ALTER TABLE jobs ADD COLUMN queued_ms INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN started_ms INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN finished_ms INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE events(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, job INTEGER,
                          attempt INTEGER, line TEXT NOT NULL);
      CREATE TABLE test_cases(job INTEGER NOT NULL, attempt INTEGER NOT NULL,
        idx INTEGER NOT NULL, name TEXT NOT NULL, outcome TEXT NOT NULL,
        duration_ms INTEGER NOT NULL, message TEXT, PRIMARY KEY(job, attempt, idx));
      INSERT INTO jobs(id, commit_id, branch, state, attempt, runners, infra_failures,
                       status, created_at, updated_at)
        VALUES(7, '0000000000000000000000000000000000000001', 'main', 'finished', 1,
               'h:1', 0, 'passed', 1, 1);
      INSERT INTO jobs(id, commit_id, branch, state, attempt, runners, infra_failures,
                       created_at, updated_at)
        VALUES(8, '0000000000000000000000000000000000000002', 'main', 'queued', 0, '', 0, 1, 1);
      INSERT INTO runners VALUES('h:1', 1);
    )sql")
                    .ok());
  }
  auto store = open_sqlite_store(path, SyncMode::Normal);
  ASSERT_TRUE(store.ok()) << store.error();
  auto loaded = (*store)->load();
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  ASSERT_EQ(loaded->jobs.size(), 2u);
  EXPECT_EQ(loaded->jobs[0].id, 7u);
  EXPECT_EQ(loaded->jobs[0].state, JobState::Finished);
  EXPECT_EQ(loaded->jobs[0].repo, "");
  EXPECT_EQ(loaded->jobs[1].state, JobState::Queued);
  ASSERT_EQ(loaded->runners.size(), 1u);
  EXPECT_EQ(loaded->runners[0], StoredRunner("h:1"));
  // The new columns take writes: the same commit in a named repository is another row.
  Job named = loaded->jobs[0];
  named.id = 9;
  named.repo = "x";
  ASSERT_TRUE((*store)->save({&named}, {}, {}, {}).ok());
  auto again = (*store)->load();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->jobs.size(), 3u);
}

TEST(ReposResults, ANamedRepositorysResultGoesIntoItsFolder) {
  test::TempDir dir;
  ResultWriter writer(dir / "test_results");
  ASSERT_TRUE(writer.prepare().ok());
  Job job;
  job.id = 1;
  job.commit = commit(5);
  job.branch = "main";
  JobOutcome out;
  out.status = TestStatus::Passed;
  out.attempt = 1;
  ASSERT_TRUE(writer.write(job, out, "ok\n").ok());
  job.repo = "fork";
  ASSERT_TRUE(writer.write(job, out, "ok\n").ok());
  EXPECT_TRUE(test::file_exists(dir / ("test_results/" + commit(5))));
  EXPECT_TRUE(test::file_exists(dir / ("test_results/fork/" + commit(5))));
  EXPECT_EQ(writer.path_for(commit(5), "fork"), dir / ("test_results/fork/" + commit(5)));
}

}  // namespace
}  // namespace ci
