// The observer saves its state once a round: a SIGKILL in the middle of a round
// leaves a state file older than what the dispatcher has. After a restart every
// commit still ends with exactly one job and one result.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "cluster.h"

namespace ci::test {
namespace {

void expect_one_job_and_result_each(Cluster& c, const std::vector<std::string>& commits) {
  for (const auto& commit : commits) ASSERT_TRUE(c.wait_result(commit, 120s)) << commit;
  auto total = static_cast<int64_t>(commits.size());
  ASSERT_TRUE(wait_until([&] { return c.status_value("jobs-finished") == total; }, 60s));
  auto jobs = jobs_of(c);
  EXPECT_EQ(jobs.size(), commits.size());
  std::map<std::string, int> per_commit;
  for (const auto& j : jobs) per_commit[j.commit]++;
  for (const auto& commit : commits) EXPECT_EQ(per_commit[commit], 1) << commit;
  EXPECT_EQ(c.result_files().size(), commits.size());
}

// The exact state a kill between two hand-overs leaves: the dispatcher has the first
// commits of the round, the state file only what came before the round.
TEST(ObserverCrash, KilledAfterPartOfARoundWasAcceptedHandsOverTheRestOnce) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  c.start_runner({"--test-command", "true"});
  ASSERT_TRUE(c.wait_runners(1));
  c.start_observer();
  std::vector<std::string> commits{commit_file(c.master(), "before", "1")};
  ASSERT_TRUE(c.wait_result(commits[0]));
  Cluster::kill_hard(c.observer());

  for (int i = 0; i < 5; ++i)
    commits.push_back(commit_file(c.master(), "f" + std::to_string(i), "x"));
  // What the killed round had handed over, oldest first, when it died.
  std::map<std::string, std::string> job_of;
  for (int i = 1; i <= 2; ++i) {
    auto reply = c.ask(DispatchRequest{commits[i], "master"});
    ASSERT_TRUE(reply.ok() && reply->kind == Reply::Kind::Ok && !reply->args.empty());
    job_of[commits[i]] = reply->args.front();
  }

  c.start_observer();
  expect_one_job_and_result_each(c, commits);
  for (const auto& j : jobs_of(c)) {
    if (job_of.count(j.commit)) {
      EXPECT_EQ(std::to_string(j.id), job_of[j.commit]) << j.commit;
    }
  }
}

// Kills at whatever point the observer has reached, rounds included, while commits
// keep coming.
TEST(ObserverCrash, KilledThreeTimesDuringABurstOfFortyCommits) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  for (int i = 0; i < 2; ++i) c.start_runner({"--test-command", "true"});
  ASSERT_TRUE(c.wait_runners(2));
  c.start_observer({"--interval", "0.02"});

  std::vector<std::string> commits;
  for (int batch = 0; batch < 4; ++batch) {
    for (int i = 0; i < 10; ++i)
      commits.push_back(commit_file(c.master(), "f" + std::to_string(commits.size()), "x"));
    if (batch == 3) break;
    // Once the observer has started on this batch.
    size_t had = static_cast<size_t>(batch) * 10;
    ASSERT_TRUE(wait_until([&] { return jobs_of(c).size() > had; }));
    Cluster::kill_hard(c.observer());
    c.start_observer({"--interval", "0.02"});
  }
  expect_one_job_and_result_each(c, commits);
}

}  // namespace
}  // namespace ci::test
