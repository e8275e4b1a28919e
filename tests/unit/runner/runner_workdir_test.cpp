// A runner started with a workdir provisions the named repositories its jobs come
// from: it clones a repository the first time one of its jobs comes up, fetches only
// when a commit is missing, never reuses a half-made or foreign store, and turns an
// unreachable URL into an error result while serving other repositories.
#include <gtest/gtest.h>

#include <filesystem>

#include "fake_dispatcher.h"
#include "runner/runner.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace test_peer;

class RunnerWorkdirTest : public RunnerTest {
 protected:
  void SetUp() override {
    RunnerTest::SetUp();
    options.job.repo.clear();  // no clone: named repositories only
    options.workdir = dir / "workdir";
    options.job.test_command = "echo \"tested in $PWD\"; test -n \"$(ls)\"";
    fake.start();
  }

  Reply::Kind runtest(JobId job, const std::string& at, const std::string& repo,
                      const std::string& url) {
    auto reply = call(runner->port(), Request{RuntestRequest{job, 1, at, "master", repo, url}});
    EXPECT_TRUE(reply.ok()) << reply.error();
    return reply ? reply->kind : Reply::Kind::Err;
  }

  // Waits for the results of `job` (attempt 1).
  ResultsRequest result_of(JobId job) { return fake.result_of(job); }

  std::string store(const std::string& name) { return dir / ("workdir/repos/" + name + ".git"); }
};

TEST_F(RunnerWorkdirTest, RegistersForNamedRepositoriesOnly) {
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  RegisterRequest registered = fake.registrations().front();
  EXPECT_EQ(registered.repos, RepoScope::Named);
  EXPECT_EQ(registered.slots, 1u);
}

TEST_F(RunnerWorkdirTest, ProvisionsARepositoryItHasNeverSeenAndFetchesOnlyMissingCommits) {
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  // A relative path, as a URL elsewhere: the store copies the objects rather than
  // reading the source's (which a path or file:// URL on this machine lets it do), so
  // that a new commit needs a fetch.
  const std::string url =
      std::filesystem::relative(dir / "master", std::filesystem::current_path()).string();
  ASSERT_EQ(url.front(), '.') << url;
  ASSERT_EQ(runtest(1, commit, "alpha", url), Reply::Kind::Ok);
  ResultsRequest first = result_of(1);
  EXPECT_EQ(first.status, TestStatus::Passed) << first.output;
  EXPECT_TRUE(std::filesystem::is_directory(store("alpha")));
  EXPECT_EQ(runner->stores()->clones(), 1u);

  // The same commit again: neither cloned nor fetched.
  ASSERT_EQ(runtest(2, commit, "alpha", url), Reply::Kind::Ok);
  EXPECT_EQ(result_of(2).status, TestStatus::Passed);
  EXPECT_EQ(runner->stores()->clones(), 1u);
  EXPECT_EQ(log_count("fetching origin"), 0u);

  // A commit pushed to the source since: fetched into the store, not cloned again.
  std::string newer = test::commit_file(dir / "master", "NEWS", "more\n");
  ASSERT_EQ(runtest(3, newer, "alpha", url), Reply::Kind::Ok);
  ResultsRequest third = result_of(3);
  EXPECT_EQ(third.status, TestStatus::Passed) << third.output;
  EXPECT_EQ(runner->stores()->clones(), 1u);
  EXPECT_EQ(log_count("commit " + newer + " not in the clone, fetching origin"), 1u);
}

TEST_F(RunnerWorkdirTest, TwoRepositoriesGetAStoreEachAndAFileUrlWorks) {
  test::clone_repo(dir / "master", dir / "fork");
  start_runner();
  ASSERT_EQ(runtest(1, commit, "upstream", "file://" + (dir / "master")), Reply::Kind::Ok);
  EXPECT_EQ(result_of(1).status, TestStatus::Passed);
  ASSERT_EQ(runtest(2, commit, "fork", dir / "fork"), Reply::Kind::Ok);
  EXPECT_EQ(result_of(2).status, TestStatus::Passed);
  EXPECT_TRUE(std::filesystem::is_directory(store("upstream")));
  EXPECT_TRUE(std::filesystem::is_directory(store("fork")));
  EXPECT_EQ(runner->stores()->clones(), 2u);
}

TEST_F(RunnerWorkdirTest, AHalfMadeCloneIsRemovedAndABrokenStoreClonedAgain) {
  // What a runner killed while cloning leaves, and a store that is no repository.
  std::filesystem::create_directories(dir / "workdir/repos/alpha.git.partial/objects");
  test::run({"sh", "-c", "echo junk > '" + (dir / "workdir/repos/alpha.git.partial/HEAD") + "'"});
  std::filesystem::create_directories(store("alpha"));
  test::run({"sh", "-c", "echo junk > '" + store("alpha") + "/HEAD'"});
  start_runner();
  EXPECT_FALSE(std::filesystem::exists(dir / "workdir/repos/alpha.git.partial"))
      << "removed at start";
  ASSERT_EQ(runtest(1, commit, "alpha", dir / "master"), Reply::Kind::Ok);
  ResultsRequest result = result_of(1);
  EXPECT_EQ(result.status, TestStatus::Passed) << result.output;
  EXPECT_EQ(runner->stores()->clones(), 1u);
  EXPECT_EQ(log_count("is not a usable store"), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir / "workdir/repos/alpha.git.partial"));
}

TEST_F(RunnerWorkdirTest, AStoreOfAnotherUrlIsClonedAgain) {
  test::clone_repo(dir / "master", dir / "elsewhere");
  start_runner();
  ASSERT_EQ(runtest(1, commit, "alpha", dir / "master"), Reply::Kind::Ok);
  EXPECT_EQ(result_of(1).status, TestStatus::Passed);
  ASSERT_EQ(runtest(2, commit, "alpha", dir / "elsewhere"), Reply::Kind::Ok);
  EXPECT_EQ(result_of(2).status, TestStatus::Passed);
  EXPECT_EQ(runner->stores()->clones(), 2u);
  EXPECT_EQ(log_count("fetches from " + (dir / "master") + ", not " + (dir / "elsewhere")), 1u);
}

TEST_F(RunnerWorkdirTest, AnUnreachableUrlEndsInAnErrorNamingItAndTheRunnerServesOthers) {
  start_runner();
  const std::string nowhere = dir / "no-such-repository";
  ASSERT_EQ(runtest(1, commit, "ghost", nowhere), Reply::Kind::Ok);
  ResultsRequest failed = result_of(1);
  EXPECT_EQ(failed.status, TestStatus::Error);
  EXPECT_NE(failed.output.find("repository ghost at " + nowhere), std::string::npos)
      << failed.output;
  EXPECT_EQ(log_count("try 3 of 3 failed"), 1u) << "tried a few times";
  EXPECT_FALSE(std::filesystem::exists(store("ghost")));
  EXPECT_FALSE(std::filesystem::exists(dir / "workdir/repos/ghost.git.partial"));

  ASSERT_EQ(runtest(2, commit, "alpha", dir / "master"), Reply::Kind::Ok);
  ResultsRequest passed = result_of(2);
  EXPECT_EQ(passed.status, TestStatus::Passed) << passed.output;
}

TEST_F(RunnerWorkdirTest, AStopWhileAFetchIsRetriedGivesTheJobBack) {
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  ASSERT_EQ(runtest(1, commit, "ghost", dir / "no-such-repository"), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return log_count("try 1 of 3 failed") == 1; }));
  runner->stop();
  EXPECT_TRUE(fake.results().empty()) << "nothing is known of the commit";
  ASSERT_EQ(fake.abandoned().size(), 1u);
  EXPECT_EQ(fake.abandoned().front().job, 1u);
}

TEST_F(RunnerWorkdirTest, ALockLeftInAStoreByAKilledFetchIsRemoved) {
  start_runner();
  ASSERT_EQ(runtest(1, commit, "alpha", dir / "master"), Reply::Kind::Ok);
  EXPECT_EQ(result_of(1).status, TestStatus::Passed);
  runner.reset();
  const std::string lock = store("alpha") + "/packed-refs.lock";
  test::run({"touch", lock});
  start_runner();
  ASSERT_EQ(runtest(2, commit, "alpha", dir / "master"), Reply::Kind::Ok);
  EXPECT_EQ(result_of(2).status, TestStatus::Passed);
  EXPECT_FALSE(test::file_exists(lock));
  EXPECT_EQ(log_count("removed " + lock), 1u);
  EXPECT_EQ(runner->stores()->clones(), 0u) << "the store is kept";
}

// A dispatcher that offers what this runner does not serve is refused, so that it gives
// the job to another runner rather than have it end here as an error.
TEST_F(RunnerWorkdirTest, ADefaultRepositoryJobWithoutACloneIsRefused) {
  start_runner();
  EXPECT_EQ(test_peer::runtest(runner->port(), 1, commit), Reply::Kind::Err);
  ASSERT_EQ(runtest(2, commit, "alpha", dir / "master"), Reply::Kind::Ok);
  EXPECT_EQ(result_of(2).status, TestStatus::Passed);
  EXPECT_EQ(fake.results().size(), 1u) << "nothing was reported of the refused job";
}

TEST_F(RunnerWorkdirTest, AClonePlusAWorkdirServesBoth) {
  options.job.repo = dir / "clone";
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  EXPECT_EQ(fake.registrations().front().repos, RepoScope::All);
  ASSERT_EQ(test_peer::runtest(runner->port(), 1, commit), Reply::Kind::Ok);
  EXPECT_EQ(result_of(1).status, TestStatus::Passed);
  ASSERT_EQ(runtest(2, commit, "alpha", dir / "master"), Reply::Kind::Ok);
  EXPECT_EQ(result_of(2).status, TestStatus::Passed);
  EXPECT_EQ(runner->stores()->clones(), 1u) << "the default repository needs no store";
}

TEST_F(RunnerWorkdirTest, TwoSlotsNeedingTheSameNewRepositoryCloneItOnce) {
  options.slots = 2;
  start_runner();
  ASSERT_EQ(runtest(1, commit, "alpha", dir / "master"), Reply::Kind::Ok);
  ASSERT_EQ(runtest(2, commit, "alpha", dir / "master"), Reply::Kind::Ok);
  EXPECT_EQ(result_of(1).status, TestStatus::Passed);
  EXPECT_EQ(result_of(2).status, TestStatus::Passed);
  EXPECT_EQ(runner->stores()->clones(), 1u);
  EXPECT_EQ(log_count("cloning"), 1u);
}

TEST_F(RunnerWorkdirTest, TwoRunnersCannotShareAWorkdir) {
  start_runner();
  RunnerOptions second = options;
  second.state_dir = dir / "state2";
  second.spool_dir = dir / "spool2";
  Runner other(second);
  auto started = other.start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().find("another ci-runner uses the work folder"), std::string::npos)
      << started.error();
}

}  // namespace
}  // namespace ci::runner
