// Contract 1, proved by killing processes: every commit ends with exactly one result,
// whichever daemon is killed with SIGKILL, once the daemons are running again.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "cluster.h"

namespace ci::test {
namespace {

namespace fs = std::filesystem;

// A test command that says it started (per job and attempt) and then waits for a
// file to appear before it passes: the test decides when a job ends.
std::string gated_command(const std::string& dir) {
  return "touch " + dir +
         "/started.$CI_JOB_ID.$CI_ATTEMPT; "
         "while [ ! -e " +
         dir + "/release ]; do sleep 0.02; done; echo ran $CI_COMMIT";
}

TEST(Kill, RunnerKilledMidTestJobIsFinishedByTheOtherRunner) {
  Cluster c;
  std::string first = make_master_repo(c.master());
  c.start_dispatcher();
  std::string gate = c.shared_dir("gate");
  c.start_runner({"--test-command", gated_command(gate), "--sandbox-share", gate});
  ASSERT_TRUE(c.wait_runners(1));
  ASSERT_TRUE(c.ask(DispatchRequest{first, "master"}).ok());
  ASSERT_TRUE(wait_until([&] { return file_exists(gate + "/started.1.1"); }));
  c.start_runner({"--test-command", gated_command(gate), "--sandbox-share", gate});
  ASSERT_TRUE(c.wait_runners(2));
  Cluster::kill_hard(c.runner(0));
  std::ofstream(gate + "/release").flush();

  ASSERT_TRUE(c.wait_result(first)) << c.dispatcher().log();
  std::string result = c.result(first);
  EXPECT_EQ(header_field(result, "attempt"), "2");
  EXPECT_EQ(header_field(result, "status"), "passed");
  EXPECT_TRUE(wait_until([&] { return c.status_value("runners") == 1; }));
  auto jobs = jobs_of(c);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].state, "finished");
  EXPECT_EQ(c.result_files().size(), 1u);
}

TEST(Kill, RunnerKilledWithNoOtherRunnerJobWaitsForANewOne) {
  Cluster c;
  std::string first = make_master_repo(c.master());
  c.start_dispatcher();
  std::string gate = c.shared_dir("gate");
  c.start_runner({"--test-command", gated_command(gate), "--sandbox-share", gate});
  ASSERT_TRUE(c.wait_runners(1));
  ASSERT_TRUE(c.ask(DispatchRequest{first, "master"}).ok());
  ASSERT_TRUE(wait_until([&] { return file_exists(gate + "/started.1.1"); }));
  Cluster::kill_hard(c.runner(0));
  // The dead runner is dropped and its job goes back to the queue, where it waits.
  ASSERT_TRUE(wait_until([&] { return c.status_value("runners") == 0; }));
  EXPECT_EQ(c.status_value("jobs-queued"), 1);
  EXPECT_FALSE(file_exists(c.result_path(first)));

  std::ofstream(gate + "/release").flush();
  c.start_runner({"--test-command", gated_command(gate), "--sandbox-share", gate});
  ASSERT_TRUE(c.wait_result(first));
  EXPECT_EQ(header_field(c.result(first), "attempt"), "2");
  EXPECT_EQ(c.status_value("jobs-finished"), 1);
}

TEST(Kill, ObserverKilledAndRestartedDispatchesExactlyTheCommitsMadeMeanwhile) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  c.start_runner({"--test-command", "true"});
  ASSERT_TRUE(c.wait_runners(1));
  c.start_observer();
  std::string before = commit_file(c.master(), "before", "1");
  ASSERT_TRUE(c.wait_result(before));
  Cluster::kill_hard(c.observer());

  std::vector<std::string> made;
  for (int i = 0; i < 5; ++i) made.push_back(commit_file(c.master(), "f" + std::to_string(i), "x"));
  c.start_observer();
  for (const auto& commit : made) ASSERT_TRUE(c.wait_result(commit)) << c.observer().log();
  ASSERT_TRUE(wait_until([&] { return c.status_value("jobs-finished") == 6; }));
  // Exactly those: one job per commit, nothing dispatched twice or missed.
  auto jobs = jobs_of(c);
  ASSERT_EQ(jobs.size(), 6u);
  std::set<std::string> commits;
  for (const auto& j : jobs) commits.insert(j.commit);
  EXPECT_EQ(commits.size(), 6u);
  for (const auto& commit : made) EXPECT_TRUE(commits.count(commit)) << commit;
}

TEST(Kill, DispatcherKilledWithOneJobRunningAndThreeQueuedFinishesAllFour) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  std::string gate = c.shared_dir("gate");
  c.start_runner({"--test-command", gated_command(gate), "--sandbox-share", gate});
  ASSERT_TRUE(c.wait_runners(1));
  std::vector<std::string> commits;
  for (int i = 0; i < 4; ++i) {
    commits.push_back(commit_file(c.master(), "f" + std::to_string(i), "x"));
    auto reply = c.ask(DispatchRequest{commits.back(), "master"});
    ASSERT_TRUE(reply.ok() && reply->kind == Reply::Kind::Ok);
  }
  ASSERT_TRUE(wait_until([&] { return file_exists(gate + "/started.1.1"); }));
  EXPECT_EQ(c.status_value("jobs-queued"), 3);
  Cluster::kill_hard(c.dispatcher());

  // The running job finishes while the dispatcher is down: its result waits in the
  // runner's spool.
  std::ofstream(gate + "/release").flush();
  // Its end, not its start ("job 1 attempt 1 commit ...: running" is logged before the
  // test is started): the line the runner logs once the test has ended.
  ASSERT_TRUE(wait_until([&] {
    return c.runner(0).log_contains("job 1 attempt 1 commit " + commits[0] + ": passed");
  })) << c.runner(0).log();
  c.start_dispatcher();
  for (const auto& commit : commits)
    ASSERT_TRUE(c.wait_result(commit)) << c.dispatcher().log() << c.runner(0).log();
  ASSERT_TRUE(wait_until([&] { return c.status_value("jobs-finished") == 4; }));
  auto jobs = jobs_of(c);
  ASSERT_EQ(jobs.size(), 4u);
  for (const auto& j : jobs) EXPECT_EQ(j.status, TestStatus::Passed);
  // Job 1 was not run again: its first attempt's result came from the spool.
  EXPECT_EQ(header_field(c.result(commits[0]), "attempt"), "1");
  EXPECT_FALSE(file_exists(gate + "/started.1.2"));
  EXPECT_EQ(c.status_value("runners"), 1);
}

TEST(Kill, DispatcherRestartedThreeTimesDuringABurstOfFiftyCommits) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  for (int i = 0; i < 3; ++i) c.start_runner({"--test-command", "echo ran $CI_COMMIT"});
  ASSERT_TRUE(c.wait_runners(3));
  c.start_observer();

  std::vector<std::string> commits;
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 13 && commits.size() < 50; ++i)
      commits.push_back(commit_file(c.master(), "f" + std::to_string(commits.size()), "x"));
    if (round == 3) break;
    // Kill it while that batch is in flight, then bring it back on the same port.
    ASSERT_TRUE(wait_until([&] { return c.result_files().size() >= commits.size() - 10; }));
    Cluster::kill_hard(c.dispatcher());
    c.start_dispatcher();
  }
  ASSERT_EQ(commits.size(), 50u);
  for (const auto& commit : commits) ASSERT_TRUE(c.wait_result(commit, 120s)) << commit;
  ASSERT_TRUE(wait_until([&] { return c.status_value("jobs-finished") == 50; }, 60s));
  auto jobs = jobs_of(c);
  EXPECT_EQ(jobs.size(), 50u);
  std::map<std::string, int> per_commit;
  for (const auto& j : jobs) per_commit[j.commit]++;
  for (const auto& commit : commits) EXPECT_EQ(per_commit[commit], 1) << commit;
  EXPECT_EQ(c.result_files().size(), 50u);
  EXPECT_EQ(c.status_value("runners"), 3);
}

TEST(Kill, RunnerStoppedLongerThanTheHeartbeatComesBackAsTheSameRunner) {
  Cluster c;
  std::string first = make_master_repo(c.master());
  c.start_dispatcher();
  std::string gate = c.shared_dir("gate");
  c.start_runner({"--test-command", gated_command(gate), "--sandbox-share", gate});
  ASSERT_TRUE(c.wait_runners(1));
  ASSERT_TRUE(c.ask(DispatchRequest{first, "master"}).ok());
  ASSERT_TRUE(wait_until([&] { return file_exists(gate + "/started.1.1"); }));

  // Frozen for longer than the dispatcher waits: it is dropped and its job requeued.
  c.runner(0).kill(SIGSTOP);
  ASSERT_TRUE(wait_until([&] { return c.status_value("runners") == 0; }));
  EXPECT_EQ(c.status_value("jobs-queued"), 1);
  std::ofstream(gate + "/release").flush();
  c.runner(0).kill(SIGCONT);

  // It registers again, once, and its late result is the job's one result.
  ASSERT_TRUE(c.wait_result(first)) << c.dispatcher().log() << c.runner(0).log();
  ASSERT_TRUE(wait_until([&] { return c.status_value("jobs-finished") == 1; }));
  // It registers again once it notices the dispatcher's silence, and only once.
  ASSERT_TRUE(wait_until([&] { return c.status_value("runners-idle") == 1; }));
  // The dispatcher logs a registration when it saves it, a moment after the status has
  // it: waited for, then counted.
  std::string log;
  auto registrations = [&] {
    log = c.dispatcher().log();
    size_t n = 0;
    for (size_t pos = 0; (pos = log.find("registered", pos)) != std::string::npos; ++pos) ++n;
    return n;
  };
  EXPECT_TRUE(wait_until([&] { return registrations() >= 2; })) << log;
  EXPECT_EQ(registrations(), 2u) << log;  // at start, and after it was dropped
  EXPECT_EQ(c.status_value("runners"), 1);
  EXPECT_EQ(c.status_value("jobs-queued"), 0);
  EXPECT_EQ(jobs_of(c).size(), 1u);
  EXPECT_EQ(header_field(c.result(first), "status"), "passed");
}

}  // namespace
}  // namespace ci::test
