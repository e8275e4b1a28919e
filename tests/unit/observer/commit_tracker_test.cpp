#include "observer/commit_tracker.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ci/files.h"
#include "ci/git.h"
#include "test_support.h"

namespace ci::observer {
namespace {

using test::commit_file;
using test::git;

// A master repository and the observer's clone of it, read the way the observer
// reads it: fetch, then the remote-tracking branches.
class CommitTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    master_ = tmp_ / "master";
    base_ = test::make_master_repo(master_);
    clone_ = test::clone_repo(master_, tmp_ / "clone");
    auto repo = git::Repository::open(clone_);
    ASSERT_TRUE(repo.ok()) << repo.error();
    repo_.emplace(std::move(*repo));
  }

  std::vector<git::BranchTip> tips() {
    auto fetched = repo_->fetch("origin");
    EXPECT_TRUE(fetched.ok()) << fetched.error();
    auto t = repo_->branch_tips("origin");
    EXPECT_TRUE(t.ok()) << t.error();
    return t.ok() ? *t : std::vector<git::BranchTip>{};
  }

  // Plans; returns everything pending (what this plan added after what earlier ones
  // left), and keeps the plan's report in last_.
  std::vector<HandOver> plan(CommitTracker& tracker) {
    auto p = tracker.plan(tips(), *repo_);
    EXPECT_TRUE(p.ok()) << p.error();
    last_ = p.ok() ? *p : PlanReport{};
    return tracker.pending();
  }

  // Plans, then hands everything over, as the observer does when all goes well.
  std::vector<HandOver> round(CommitTracker& tracker) {
    auto items = plan(tracker);
    for (const auto& item : items) tracker.mark_handed_over(item.branch, item.commit);
    return items;
  }

  static std::vector<std::string> commits(const std::vector<HandOver>& items) {
    std::vector<std::string> out;
    for (const auto& item : items) out.push_back(item.commit);
    return out;
  }

  test::TempDir tmp_;
  std::string master_;
  std::string base_;
  std::string clone_;
  std::optional<git::Repository> repo_;
  PlanReport last_;
};

TEST_F(CommitTrackerTest, FirstSightHandsOverNothingAndCountsTipsAsSeen) {
  commit_file(master_, "a.txt", "a");
  git(master_, {"branch", "feature"});
  CommitTracker tracker(DispatchMode::PerCommit);
  EXPECT_FALSE(tracker.has_state());

  EXPECT_TRUE(plan(tracker).empty());
  EXPECT_TRUE(tracker.has_state());
  EXPECT_TRUE(tracker.dirty());
  std::string head = test::head_commit(master_);
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
  std::string merge = test::head_commit(master_);
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

// A pushed orphan branch of 800 commits on a history of 20,000: the plan reads the
// new commits and a handful of old ones, once, not the old history per new commit.
TEST_F(CommitTrackerTest, OrphanBranchOnALongHistoryIsPlannedByReadingItsOwnCommits) {
  constexpr int64_t kDate = 1700000000;
  test::import_commits(master_, "master", base_, 20000, kDate);
  CommitTracker tracker(DispatchMode::PerCommit);
  round(tracker);
  std::string orphan_tip = test::import_commits(master_, "orphan", "", 800, kDate + 30000);
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
  std::string tip = test::import_commits(master_, "master", base_, 12, 1700000000);
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
  std::string m = test::import_commits(master_, "master", base_, 2, 1700000000);
  std::string f = test::import_commits(master_, "feature", base_, 3, 1700000000);
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

TEST(CommitTrackerStateFile, CorruptFileIsAnErrorNamingIt) {
  test::TempDir tmp;
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

}  // namespace
}  // namespace ci::observer

namespace ci::observer {
namespace {

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

}  // namespace
}  // namespace ci::observer

namespace ci::observer {
namespace {

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
