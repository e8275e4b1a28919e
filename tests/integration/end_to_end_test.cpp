// The whole system with real daemons, real repositories and real test processes.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "cluster.h"

namespace ci::test {
namespace {

namespace fs = std::filesystem;

TEST(EndToEnd, SeedScenarioACommitGetsAResultFileWithOnePassAndOneFailure) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  c.start_runner();
  ASSERT_TRUE(c.wait_runners(1));
  c.start_observer();

  std::string commit = commit_file(c.master(), "new_file", "", "new file");
  ASSERT_TRUE(c.wait_result(commit)) << c.dispatcher().log() << c.runner(0).log();
  std::string result = c.result(commit);
  EXPECT_EQ(header_field(result, "status"), "failed");
  EXPECT_EQ(header_field(result, "tests-run"), "2");
  EXPECT_EQ(header_field(result, "tests-failed"), "1");
  EXPECT_EQ(header_field(result, "branch"), "master");
  EXPECT_EQ(header_field(result, "commit"), commit);
  EXPECT_NE(result.find("test_addition (test_pass.TestPasses"), std::string::npos) << result;
  EXPECT_NE(result.find("FAILED (failures=1)"), std::string::npos) << result;
  // The runner and the dispatcher say what happened, naming the commit.
  EXPECT_TRUE(wait_until([&] { return c.dispatcher().log_contains(commit); }));
}

TEST(EndToEnd, BurstOfTenCommitsOnTwoRunnersGivesTenResultsEachOnce) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  c.start_runner({"--test-command", "echo tested $CI_COMMIT"});
  c.start_runner({"--test-command", "echo tested $CI_COMMIT"});
  ASSERT_TRUE(c.wait_runners(2));
  c.start_observer();

  std::vector<std::string> commits;
  for (int i = 0; i < 10; ++i)
    commits.push_back(commit_file(c.master(), "file" + std::to_string(i), std::to_string(i)));
  for (const auto& commit : commits) ASSERT_TRUE(c.wait_result(commit)) << c.dispatcher().log();
  ASSERT_TRUE(wait_until([&] { return c.status_value("jobs-finished") == 10; }));

  EXPECT_EQ(c.result_files().size(), 10u);
  std::set<std::string> runners;
  for (const auto& commit : commits) {
    std::string result = c.result(commit);
    EXPECT_EQ(header_field(result, "status"), "passed");
    EXPECT_EQ(header_field(result, "attempt"), "1");
    EXPECT_NE(result.find("tested " + commit), std::string::npos);
    runners.insert(header_field(result, "runner"));
  }
  // Both runners took part: the dispatcher spreads jobs over the free runners.
  EXPECT_EQ(runners.size(), 2u);
  EXPECT_EQ(c.status_value("jobs-queued"), 0);
  EXPECT_EQ(c.status_value("jobs-running"), 0);
}

TEST(EndToEnd, ACommitOnASecondBranchIsTested) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  c.start_runner();
  ASSERT_TRUE(c.wait_runners(1));
  c.start_observer();

  git(c.master(), {"checkout", "-q", "-b", "feature/login"});
  std::string commit = commit_file(c.master(), "login.txt", "login", "login page");
  ASSERT_TRUE(c.wait_result(commit)) << c.observer().log();
  EXPECT_EQ(header_field(c.result(commit), "branch"), "feature/login");
  // Only the new commit: the history the branch shares with master is not tested again.
  EXPECT_EQ(c.result_files(), std::vector<std::string>{commit});
}

TEST(EndToEnd, RepositoryCiRunIsUsedWhenPresent) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  c.start_runner();
  ASSERT_TRUE(c.wait_runners(1));
  c.start_observer();

  fs::create_directories(c.master() + "/.ci");
  std::string script = "#!/bin/sh\necho \"custom suite ran in $(pwd) for $CI_BRANCH\"\nexit 0\n";
  std::ofstream(c.master() + "/.ci/run") << script;
  fs::permissions(c.master() + "/.ci/run", fs::perms::owner_all, fs::perm_options::add);
  git(c.master(), {"add", ".ci/run"});
  git(c.master(), {"commit", "-q", "-m", "own test script"});
  std::string commit = head_commit(c.master());
  ASSERT_TRUE(c.wait_result(commit));
  std::string result = c.result(commit);
  EXPECT_EQ(header_field(result, "status"), "passed");
  EXPECT_NE(result.find("custom suite ran in"), std::string::npos) << result;
  EXPECT_NE(result.find("for master"), std::string::npos) << result;
  // Not the unittest default: the failing example test did not run.
  EXPECT_EQ(result.find("test_subtraction"), std::string::npos) << result;
}

bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

TEST(EndToEnd, TestTimeoutGivesStatusTimeoutAndKillsTheTestsProcesses) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  std::string pids = c.shared_dir("shared") + "/pids";
  // The test starts a background process and then hangs. (Unconfined, so that the
  // process ids it writes are the machine's: in the sandbox they are its own.) The
  // timeout runs from the start of the test's shell, which must have written both ids
  // before it: 3 s, as starting the guard and the shell can take over a second on a
  // busy machine or under a sanitizer.
  c.start_runner({"--timeout", "3", "--sandbox", "off", "--test-command",
                  "sleep 300 & echo $! >> " + pids + "; echo $$ >> " + pids + "; sleep 300"});
  ASSERT_TRUE(c.wait_runners(1));
  c.start_observer();

  std::string commit = commit_file(c.master(), "slow", "slow");
  ASSERT_TRUE(c.wait_result(commit, 30000ms)) << c.runner(0).log();
  EXPECT_EQ(header_field(c.result(commit), "status"), "timeout");
  std::vector<pid_t> started;
  std::ifstream in(pids);
  for (pid_t p; in >> p;) started.push_back(p);
  ASSERT_EQ(started.size(), 2u);
  for (pid_t p : started)
    EXPECT_TRUE(wait_until([&] { return !process_alive(p); }, 10000ms)) << "pid " << p;
  // The runner is free again and takes the next job.
  EXPECT_TRUE(wait_until([&] { return c.status_value("runners-idle") == 1; }));
}

TEST(EndToEnd, DispatchedCommitWaitsForARunnerToRegister) {
  Cluster c;
  std::string first = make_master_repo(c.master());
  c.start_dispatcher();
  auto reply = c.ask(DispatchRequest{first, "master"});
  ASSERT_TRUE(reply && reply->kind == Reply::Kind::Ok) << (reply ? reply->reason() : reply.error());
  EXPECT_EQ(c.status_value("jobs-queued"), 1);
  c.start_runner();
  ASSERT_TRUE(c.wait_result(first));
  EXPECT_EQ(header_field(c.result(first), "status"), "failed");
  // Dispatching the same commit again changes nothing.
  auto again = c.ask(DispatchRequest{first, "master"});
  ASSERT_TRUE(again && again->kind == Reply::Kind::Ok);
  EXPECT_EQ(again->args, reply->args);
  EXPECT_EQ(c.status_value("jobs-finished"), 1);
  EXPECT_EQ(c.status_value("jobs-queued"), 0);
}

}  // namespace
}  // namespace ci::test
