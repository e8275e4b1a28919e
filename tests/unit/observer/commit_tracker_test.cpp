// What a CommitTracker plans: new commits in order, each once, across branches, merges,
// force pushes and restarts, and its state file.
#include "observer/commit_tracker.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ci/files.h"
#include "ci/git.h"
#include "commit_tracker_fixture.h"
#include "test_support.h"

namespace ci::observer {
namespace {

using ci::test::commit_file;
using ci::test::git;
using test::CommitTrackerTest;

TEST_F(CommitTrackerTest, FirstSightHandsOverNothingAndCountsTipsAsSeen) {
  commit_file(master_, "a.txt", "a");
  git(master_, {"branch", "feature"});
  CommitTracker tracker(DispatchMode::PerCommit);
  EXPECT_FALSE(tracker.has_state());

  EXPECT_TRUE(plan(tracker).empty());
  EXPECT_TRUE(tracker.has_state());
  EXPECT_TRUE(tracker.dirty());
  std::string head = ci::test::head_commit(master_);
  EXPECT_EQ(tracker.state(), (CommitTracker::State{{"feature", head}, {"master", head}}));
  EXPECT_TRUE(plan(tracker).empty());
}

TEST_F(CommitTrackerTest, NewCommitsAreHandedOverOldestFirst) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  std::string c1 = commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "a.txt", "2");
  std::string c3 = commit_file(master_, "a.txt", "3");

  auto items = round(tracker);
  EXPECT_EQ(items, (std::vector<HandOver>{{"master", c1}, {"master", c2}, {"master", c3}}));
  EXPECT_EQ(tracker.state().at("master"), c3);
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, PlanWithoutHandOverIsRepeatedAndPartialHandOverResumes) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  std::string c1 = commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "a.txt", "2");
  std::string c3 = commit_file(master_, "a.txt", "3");

  EXPECT_EQ(commits(plan(tracker)), (std::vector<std::string>{c1, c2, c3}));
  // The dispatcher was down: the same plan again.
  auto again = plan(tracker);
  EXPECT_EQ(commits(again), (std::vector<std::string>{c1, c2, c3}));
  // Only the first went through: the rest follow, in order.
  tracker.mark_handed_over(again[0].branch, again[0].commit);
  EXPECT_EQ(commits(round(tracker)), (std::vector<std::string>{c2, c3}));
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, LatestOnlyHandsOverTheNewestCommit) {
  CommitTracker tracker(DispatchMode::LatestOnly);
  round(tracker);
  commit_file(master_, "a.txt", "1");
  commit_file(master_, "a.txt", "2");
  std::string c3 = commit_file(master_, "a.txt", "3");

  EXPECT_EQ(round(tracker), (std::vector<HandOver>{{"master", c3}}));
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, NewBranchHandsOverOnlyItsOwnCommits) {
  CommitTracker tracker(DispatchMode::PerCommit);
  commit_file(master_, "a.txt", "old history");
  round(tracker);
  git(master_, {"checkout", "-q", "-b", "feature"});
  std::string f1 = commit_file(master_, "f.txt", "1");
  std::string f2 = commit_file(master_, "f.txt", "2");
  git(master_, {"checkout", "-q", "master"});

  EXPECT_EQ(round(tracker), (std::vector<HandOver>{{"feature", f1}, {"feature", f2}}));
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, NewBranchAtAKnownCommitHandsOverNothing) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  git(master_, {"branch", "release"});

  EXPECT_TRUE(round(tracker).empty());
  EXPECT_EQ(tracker.state().at("release"), base_);
}

TEST_F(CommitTrackerTest, CommitOnTwoBranchesIsHandedOverOnce) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  std::string shared = commit_file(master_, "a.txt", "shared");
  git(master_, {"branch", "feature"});
  git(master_, {"checkout", "-q", "feature"});
  std::string f1 = commit_file(master_, "f.txt", "1");
  git(master_, {"checkout", "-q", "master"});

  // "feature" sorts first and carries the shared commit; master's tip is then
  // recorded without being handed over again.
  EXPECT_EQ(commits(round(tracker)), (std::vector<std::string>{shared, f1}));
  EXPECT_TRUE(round(tracker).empty());
  EXPECT_EQ(tracker.state().at("master"), shared);
  EXPECT_EQ(tracker.state().at("feature"), f1);
}

TEST_F(CommitTrackerTest, SameNewTipOnTwoBranchesLatestOnlyHandsOverOnce) {
  CommitTracker tracker(DispatchMode::LatestOnly);
  round(tracker);
  std::string c1 = commit_file(master_, "a.txt", "1");
  git(master_, {"branch", "copy"});

  EXPECT_EQ(commits(round(tracker)), (std::vector<std::string>{c1}));
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, ForcePushHandsOverOnlyTheNewCommit) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  commit_file(master_, "a.txt", "1");
  commit_file(master_, "a.txt", "2");
  EXPECT_EQ(round(tracker).size(), 2u);

  git(master_, {"reset", "-q", "--hard", "HEAD~2"});
  std::string rewritten = commit_file(master_, "b.txt", "instead");
  EXPECT_EQ(round(tracker), (std::vector<HandOver>{{"master", rewritten}}));
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, ForcePushBackwardsHandsOverNothing) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  commit_file(master_, "a.txt", "1");
  EXPECT_EQ(round(tracker).size(), 1u);

  git(master_, {"reset", "-q", "--hard", "HEAD~1"});
  EXPECT_TRUE(round(tracker).empty());
  EXPECT_EQ(tracker.state().at("master"), base_);
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, MergeCommitIsHandedOverOnce) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  git(master_, {"checkout", "-q", "-b", "feature"});
  std::string f1 = commit_file(master_, "f.txt", "1");
  git(master_, {"checkout", "-q", "master"});
  std::string m1 = commit_file(master_, "m.txt", "1");
  EXPECT_EQ(commits(round(tracker)), (std::vector<std::string>{f1, m1}));

  git(master_, {"merge", "-q", "--no-ff", "-m", "merge feature", "feature"});
  std::string merge = ci::test::head_commit(master_);
  EXPECT_EQ(round(tracker), (std::vector<HandOver>{{"master", merge}}));
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, DeletedBranchStillHidesItsHistory) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  git(master_, {"checkout", "-q", "-b", "feature"});
  std::string f1 = commit_file(master_, "f.txt", "1");
  git(master_, {"checkout", "-q", "master"});
  EXPECT_EQ(commits(round(tracker)), (std::vector<std::string>{f1}));

  git(master_, {"branch", "-q", "-D", "feature"});
  EXPECT_TRUE(round(tracker).empty());
  git(master_, {"merge", "-q", "--ff-only", f1});
  EXPECT_TRUE(round(tracker).empty());
  EXPECT_EQ(tracker.state().at("master"), f1);
}

TEST_F(CommitTrackerTest, SavedStateLetsANewTrackerHandOverExactlyWhatCameSince) {
  std::string state_file = tmp_ / "observer.state";
  {
    CommitTracker tracker(DispatchMode::PerCommit);
    round(tracker);
    commit_file(master_, "a.txt", "1");
    EXPECT_EQ(round(tracker).size(), 1u);
    ASSERT_TRUE(tracker.save(state_file).ok());
    EXPECT_FALSE(tracker.dirty());
  }
  std::string c2 = commit_file(master_, "a.txt", "2");
  std::string c3 = commit_file(master_, "a.txt", "3");

  auto loaded = CommitTracker::load(state_file, DispatchMode::PerCommit);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_TRUE(loaded->has_state());
  EXPECT_FALSE(loaded->dirty());
  EXPECT_EQ(commits(round(*loaded)), (std::vector<std::string>{c2, c3}));
}

TEST_F(CommitTrackerTest, MissingStateFileMeansNoState) {
  auto loaded = CommitTracker::load(tmp_ / "none.state", DispatchMode::PerCommit);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_FALSE(loaded->has_state());
}

TEST_F(CommitTrackerTest, EmptyStateFileMeansNoBranchesYet) {
  // Saved after a first look at a repository without branches: its first
  // branch is new, so its commits are handed over.
  std::string state_file = tmp_ / "empty.state";
  ASSERT_TRUE(write_file_atomic(state_file, "").ok());
  auto loaded = CommitTracker::load(state_file, DispatchMode::PerCommit);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_TRUE(loaded->has_state());
  EXPECT_EQ(commits(round(*loaded)), (std::vector<std::string>{base_}));
}

TEST(CommitTrackerStateFile, CorruptFileIsAnErrorNamingIt) {
  ci::test::TempDir tmp;
  std::string good(40, 'a');
  const std::vector<std::string> corrupt{
      "garbage\n",
      "master " + good + " extra\n",
      "master 1234\n",
      "bad..name " + good + "\n",
      "master " + good + "\nmaster " + good + "\n",
      "master " + good + "\n\n",
      std::string("master ") + good + "\r\n",
  };
  for (const auto& text : corrupt) {
    std::string path = tmp / "corrupt.state";
    ASSERT_TRUE(write_file_atomic(path, text).ok());
    auto loaded = CommitTracker::load(path, DispatchMode::PerCommit);
    ASSERT_FALSE(loaded.ok()) << "accepted: " << text;
    EXPECT_NE(loaded.error().find(path), std::string::npos) << loaded.error();
  }
}

TEST(CommitTrackerStateFile, FormatAndParseRoundTrip) {
  CommitTracker::State state{{"feature/x", std::string(40, 'b')}, {"master", std::string(40, 'c')}};
  std::string text = CommitTracker::format_state(state);
  EXPECT_EQ(text, "feature/x " + std::string(40, 'b') + "\nmaster " + std::string(40, 'c') + "\n");
  auto parsed = CommitTracker::parse_state(text);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(*parsed, state);
}

TEST_F(CommitTrackerTest, NewBranchWithSeveralCommitsOffANewMasterCommitHandsEachOnce) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  std::string shared = commit_file(master_, "a.txt", "shared");
  git(master_, {"checkout", "-q", "-b", "feature-16"});
  std::string f1 = commit_file(master_, "f1.txt", "1");
  std::string f2 = commit_file(master_, "f2.txt", "2");
  git(master_, {"checkout", "-q", "master"});
  EXPECT_EQ(commits(round(tracker)), (std::vector<std::string>{shared, f1, f2}));
  EXPECT_TRUE(round(tracker).empty());
}

TEST_F(CommitTrackerTest, BranchSeenBeforeItsOwnCommitsDoesNotRepeatTheSharedOne) {
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  std::string shared = commit_file(master_, "a.txt", "shared");
  git(master_, {"checkout", "-q", "-b", "feature-16"});
  // Observed here: both branches point at the new commit.
  auto first = round(tracker);
  std::string f1 = commit_file(master_, "f1.txt", "1");
  git(master_, {"checkout", "-q", "master"});
  auto second = round(tracker);
  auto third = round(tracker);
  std::vector<std::string> all = commits(first);
  for (auto* r : {&second, &third})
    for (const auto& c : commits(*r)) all.push_back(c);
  EXPECT_EQ(all, (std::vector<std::string>{shared, f1}));
}

}  // namespace
}  // namespace ci::observer
