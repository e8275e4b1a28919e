// What a CommitTracker's plan reads and keeps: a long history is not walked again per
// new commit, a branch over the cap hands over its newest commits, and what waits for
// the dispatcher stays pending without another walk.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ci/files.h"
#include "ci/git.h"
#include "commit_tracker_fixture.h"
#include "observer/commit_tracker.h"
#include "test_support.h"

namespace ci::observer {
namespace {

using ci::test::commit_file;
using ci::test::git;
using test::CommitTrackerTest;

// A pushed orphan branch of 800 commits on a history of 20,000: the plan reads the
// new commits and a handful of old ones, once, not the old history per new commit.
TEST_F(CommitTrackerTest, OrphanBranchOnALongHistoryIsPlannedByReadingItsOwnCommits) {
  constexpr int64_t kDate = 1700000000;
  ci::test::import_commits(master_, "master", base_, 20000, kDate);
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  std::string orphan_tip = ci::test::import_commits(master_, "orphan", "", 800, kDate + 30000);
  std::string root = git(master_, {"rev-list", "--max-parents=0", "orphan"}).substr(0, 40);

  auto items = plan(tracker);
  ASSERT_EQ(items.size(), 800u);
  for (const auto& item : items) EXPECT_EQ(item.branch, "orphan");
  EXPECT_EQ(items.front().commit, root);
  EXPECT_EQ(items.back().commit, orphan_tip);
  EXPECT_TRUE(last_.skipped.empty());
  EXPECT_GE(last_.commits_read, 800u);
  EXPECT_LE(last_.commits_read, 820u) << "the plan walked the old history";
}

TEST_F(CommitTrackerTest, BranchOverTheCapHandsOverItsNewestCommitsOldestFirst) {
  CommitTracker tracker(DispatchMode::PerCommit, 5);
  round(tracker);
  std::string tip = ci::test::import_commits(master_, "master", base_, 12, 1700000000);
  std::vector<std::string> made;
  std::string listed = git(master_, {"rev-list", "--reverse", base_ + ".." + tip});
  for (size_t at = 0; at + 40 <= listed.size(); at += 41) made.push_back(listed.substr(at, 40));
  ASSERT_EQ(made.size(), 12u);

  auto items = plan(tracker);
  EXPECT_EQ(commits(items), (std::vector<std::string>(made.begin() + 7, made.end())));
  EXPECT_EQ(items.back().commit, tip);
  ASSERT_EQ(last_.skipped.size(), 1u);
  EXPECT_EQ(last_.skipped[0], (Skipped{"master", 7, made[0], made[6]}));
  for (const auto& item : items) tracker.mark_handed_over(item.branch, item.commit);
  // The skipped ones stay skipped.
  EXPECT_TRUE(round(tracker).empty());
  EXPECT_EQ(tracker.state().at("master"), tip);
}

TEST_F(CommitTrackerTest, CapCountsEachBranchOnItsOwn) {
  CommitTracker tracker(DispatchMode::PerCommit, 2);
  round(tracker);
  std::string m = ci::test::import_commits(master_, "master", base_, 2, 1700000000);
  std::string f = ci::test::import_commits(master_, "feature", base_, 3, 1700000000);
  auto items = plan(tracker);
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[1], (HandOver{"feature", f}));
  EXPECT_EQ(items[3], (HandOver{"master", m}));
  ASSERT_EQ(last_.skipped.size(), 1u);
  EXPECT_EQ(last_.skipped[0].branch, "feature");
  EXPECT_EQ(last_.skipped[0].count, 1u);
}

// While the dispatcher is down nothing is handed over: the next plan keeps what is
// pending without walking the history again, and adds only what is new.
TEST_F(CommitTrackerTest, PendingPlanIsKeptAndOnlyNewCommitsAreWalked) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  std::string c1 = commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "a.txt", "2");
  EXPECT_EQ(commits(plan(tracker)), (std::vector<std::string>{c1, c2}));
  EXPECT_GT(last_.commits_read, 0u);

  EXPECT_EQ(commits(plan(tracker)), (std::vector<std::string>{c1, c2}));
  EXPECT_EQ(last_.commits_read, 0u);
  EXPECT_TRUE(last_.added.empty());

  std::string c3 = commit_file(master_, "a.txt", "3");
  git(master_, {"checkout", "-q", "-b", "feature"});
  std::string f1 = commit_file(master_, "f.txt", "1");
  git(master_, {"checkout", "-q", "master"});
  // "feature" sorts first and carries c3; master's tip is recorded once it has gone.
  EXPECT_EQ(commits(plan(tracker)), (std::vector<std::string>{c1, c2, c3, f1}));
  EXPECT_EQ(last_.added, (std::vector<HandOver>{{"feature", c3}, {"feature", f1}}));
  // The two new commits and the pending tip c2 that hides the rest, the walk's margin.
  EXPECT_LE(last_.commits_read, 10u);

  EXPECT_EQ(commits(round(tracker)), (std::vector<std::string>{c1, c2, c3, f1}));
  EXPECT_TRUE(tracker.pending().empty());
  EXPECT_TRUE(round(tracker).empty());
  EXPECT_EQ(tracker.state().at("master"), c3);
  EXPECT_EQ(tracker.state().at("feature"), f1);
}

// A branch force-pushed while its commits wait for the dispatcher: they were on it when
// seen and are still handed over, then the commit that replaced them, nothing twice.
TEST_F(CommitTrackerTest, ForcePushWhileCommitsArePendingAddsOnlyTheNewCommit) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  std::string c1 = commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "a.txt", "2");
  EXPECT_EQ(commits(plan(tracker)), (std::vector<std::string>{c1, c2}));
  git(master_, {"reset", "-q", "--hard", "HEAD~2"});
  std::string rewritten = commit_file(master_, "b.txt", "instead");
  EXPECT_EQ(commits(plan(tracker)), (std::vector<std::string>{c1, c2, rewritten}));
  EXPECT_EQ(last_.added, (std::vector<HandOver>{{"master", rewritten}}));
  EXPECT_EQ(commits(round(tracker)), (std::vector<std::string>{c1, c2, rewritten}));
  EXPECT_EQ(tracker.state().at("master"), rewritten);
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, LatestOnlyPendingCommitIsReplacedByTheNewerTip) {
  CommitTracker tracker(DispatchMode::LatestOnly);
  round(tracker);
  std::string c1 = commit_file(master_, "a.txt", "1");
  EXPECT_EQ(commits(plan(tracker)), (std::vector<std::string>{c1}));
  std::string c2 = commit_file(master_, "a.txt", "2");
  EXPECT_EQ(commits(plan(tracker)), (std::vector<std::string>{c2}));
  EXPECT_EQ(commits(round(tracker)), (std::vector<std::string>{c2}));
  EXPECT_TRUE(round(tracker).empty());
}

}  // namespace
}  // namespace ci::observer
