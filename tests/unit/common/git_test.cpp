// The libgit2 wrapper on real repositories.
#include "ci/git.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "test_support.h"

namespace ci {
namespace {

using test::commit_file;
using test::git;

class GitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    master_ = dir_ / "master";
    test::make_master_repo(master_);
  }
  git::Repository open() {
    auto repo = git::Repository::open(master_);
    EXPECT_TRUE(repo.ok()) << repo.error();
    return std::move(*repo);
  }
  test::TempDir dir_;
  std::string master_;
};

TEST_F(GitTest, CommitsSinceAreOldestFirstAndStopAtHiddenHistory) {
  std::string base = test::head_commit(master_);
  std::string a = commit_file(master_, "a", "1");
  std::string b = commit_file(master_, "b", "2");
  auto repo = open();
  auto all = repo.commits_since(b, {base});
  ASSERT_TRUE(all.ok()) << all.error();
  EXPECT_EQ(*all, (std::vector<std::string>{a, b}));
  auto none = repo.commits_since(a, {b});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  // Ids the repository does not have are skipped, not an error.
  auto skipped = repo.commits_since(b, {std::string(40, '0'), a});
  ASSERT_TRUE(skipped.ok());
  EXPECT_EQ(*skipped, std::vector<std::string>{b});
}

// Commits made within the same second (scripts, bursts) share timestamps, and
// libgit2's revwalk then let a hidden commit through. The shape that showed it: older
// side branches among the hidden tips, and a hidden descendant with the same
// timestamp as the commit asked about.
TEST_F(GitTest, HiddenDescendantHidesEvenWhenTimestampsAreEqual) {
  auto at = [](int seconds) {
    std::string date = "@" + std::to_string(1795994000 + seconds) + " +0000";
    setenv("GIT_COMMITTER_DATE", date.c_str(), 1);
    setenv("GIT_AUTHOR_DATE", date.c_str(), 1);
  };
  std::vector<std::string> hide;
  for (int i = 0; i < 6; ++i) {
    at(i * 3);
    commit_file(master_, "m", std::to_string(i));
    git(master_, {"checkout", "-q", "-b", "side-" + std::to_string(i)});
    hide.push_back(commit_file(master_, "s" + std::to_string(i), "x"));
    git(master_, {"checkout", "-q", "master"});
    at(i * 3 + 1);
    commit_file(master_, "m", std::to_string(i) + "b");
  }
  at(100);
  hide.push_back(commit_file(master_, "m", "parent"));
  std::string asked = commit_file(master_, "m", "asked");
  git(master_, {"checkout", "-q", "-b", "feature"});
  commit_file(master_, "n1", "1");
  hide.push_back(commit_file(master_, "n2", "2"));
  unsetenv("GIT_COMMITTER_DATE");
  unsetenv("GIT_AUTHOR_DATE");
  auto repo = open();
  auto fresh = repo.commits_since(asked, hide);
  ASSERT_TRUE(fresh.ok()) << fresh.error();
  EXPECT_TRUE(fresh->empty()) << "hidden commit " << (*fresh)[0] << " was walked";
}

// A pushed orphan branch on a long history: one walk reads the new commits and a few
// of the old ones, not the old history once per new commit.
TEST_F(GitTest, NewHistoryOfAnOrphanBranchReadsOnlyItsOwnCommits) {
  constexpr int64_t kDate = 1700000000;
  std::string base = test::head_commit(master_);
  std::string old_tip = test::import_commits(master_, "master", base, 20000, kDate);
  std::string orphan_tip = test::import_commits(master_, "orphan", "", 800, kDate + 30000);
  auto repo = open();
  auto found = repo.new_history({orphan_tip}, {old_tip});
  ASSERT_TRUE(found.ok()) << found.error();
  ASSERT_EQ(found->commits.size(), 800u);
  EXPECT_EQ(found->commits.back().id, orphan_tip);
  EXPECT_EQ(found->commits.front().id,
            test::git(master_, {"rev-list", "--max-parents=0", "orphan"}).substr(0, 40));
  EXPECT_EQ(found->tip_hidden, std::vector<bool>{false});
  EXPECT_GE(found->commits_read, 801u);
  EXPECT_LE(found->commits_read, 820u);
}

// Dates are the pusher's to choose: an orphan branch dated before the whole history
// costs a walk of that history, once, and is still found whole.
TEST_F(GitTest, NewHistoryDatedBeforeTheOldHistoryIsStillFoundWhole) {
  constexpr int64_t kDate = 1700000000;
  std::string base = test::head_commit(master_);
  std::string old_tip = test::import_commits(master_, "master", base, 2000, kDate);
  std::string orphan_tip = test::import_commits(master_, "orphan", "", 50, 1000000000);
  auto repo = open();
  auto found = repo.new_history({orphan_tip}, {old_tip});
  ASSERT_TRUE(found.ok()) << found.error();
  EXPECT_EQ(found->commits.size(), 50u);
  EXPECT_LE(found->commits_read, 2000u + 50u + 20u);
}

TEST_F(GitTest, NewHistoryGivesEachCommitToTheFirstTipThatReachesIt) {
  std::string base = test::head_commit(master_);
  std::string shared = commit_file(master_, "s", "shared");
  git(master_, {"checkout", "-q", "-b", "feature"});
  std::string f1 = commit_file(master_, "f", "1");
  git(master_, {"checkout", "-q", "master"});
  std::string m1 = commit_file(master_, "m", "1");
  std::string known = commit_file(master_, "m", "2");
  auto repo = open();
  // A known commit hides its ancestors from every tip: the shared one too.
  auto found = repo.new_history({m1, f1, known}, {base, known});
  ASSERT_TRUE(found.ok()) << found.error();
  EXPECT_EQ(found->tip_hidden, (std::vector<bool>{true, false, true}));
  ASSERT_EQ(found->commits.size(), 1u);
  EXPECT_EQ(found->commits[0].id, f1);
  EXPECT_EQ(found->commits[0].tip, 1u);

  auto both = repo.new_history({m1, f1}, {base});
  ASSERT_TRUE(both.ok()) << both.error();
  ASSERT_EQ(both->commits.size(), 3u);
  EXPECT_EQ(both->commits[0].id, shared);
  EXPECT_EQ(both->commits[0].tip, 0u);
  size_t f1_at = both->commits[1].id == f1 ? 1 : 2;
  EXPECT_EQ(both->commits[f1_at].tip, 1u);
  EXPECT_EQ(both->commits[3 - f1_at].id, m1);
  EXPECT_EQ(both->commits[3 - f1_at].tip, 0u);

  EXPECT_FALSE(repo.new_history({std::string(40, 'e')}, {}).ok());
  EXPECT_FALSE(repo.new_history({"not a commit"}, {}).ok());
}

TEST_F(GitTest, CheckoutRemovesUntrackedAndIgnoredFiles) {
  std::string first = test::head_commit(master_);
  commit_file(master_, ".gitignore", "*.log\n");
  std::string second = test::head_commit(master_);
  auto repo = open();
  test::run({"sh", "-c", "echo x > " + master_ + "/stray.txt; echo y > " + master_ + "/run.log"});
  ASSERT_TRUE(repo.checkout_detached(first).ok());
  EXPECT_FALSE(test::file_exists(master_ + "/stray.txt"));
  EXPECT_FALSE(test::file_exists(master_ + "/run.log"));
  EXPECT_FALSE(test::file_exists(master_ + "/.gitignore"));
  ASSERT_TRUE(repo.checkout_detached(second).ok());
  EXPECT_TRUE(test::file_exists(master_ + "/.gitignore"));
  EXPECT_FALSE(repo.checkout_detached(std::string(40, 'e')).ok());
}

// A process killed in the middle of a git write leaves its lock files; until they are
// removed every fetch and checkout of that clone fails.
TEST_F(GitTest, StaleLocksLeftByAKilledProcessAreRemoved) {
  std::string clone = dir_ / "clone";
  test::run({"git", "clone", "-q", master_, clone});
  std::string next = commit_file(master_, "next", "1");
  test::run({"sh", "-c",
             "cd " + clone + "/.git && touch index.lock packed-refs.lock " +
                 "refs/remotes/origin/master.lock && mkdir -p refs/heads/topic && " +
                 "touch refs/heads/topic/x.lock && echo keep > refs/heads/keep"});
  auto repo = git::Repository::open(clone);
  ASSERT_TRUE(repo.ok()) << repo.error();
  ASSERT_FALSE(repo->fetch("origin").ok());  // what a restarted daemon met every round
  auto removed = repo->remove_stale_locks();
  EXPECT_EQ(removed.size(), 4u);
  EXPECT_TRUE(test::file_exists(clone + "/.git/refs/heads/keep"));
  auto fetched = repo->fetch("origin");
  ASSERT_TRUE(fetched.ok()) << fetched.error();
  auto checked = repo->checkout_detached(next);
  ASSERT_TRUE(checked.ok()) << checked.error();
  EXPECT_TRUE(repo->remove_stale_locks().empty());
}

// The files a repository holds objects in: loose objects and packs (not info/).
std::vector<std::string> object_files(const std::string& repo) {
  std::vector<std::string> out;
  std::string objects = repo + "/.git/objects";
  for (const auto& e : std::filesystem::recursive_directory_iterator(objects)) {
    std::string rel = std::filesystem::relative(e.path(), objects).string();
    if (e.is_regular_file() && !rel.starts_with("info/")) out.push_back(rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string alternates_of(const std::string& repo) {
  return test::read_text(repo + "/.git/objects/info/alternates");
}

std::string canonical(const std::string& path) { return std::filesystem::canonical(path).string(); }

// The observer's and the runner's clones of a master repository on the same machine.
class SharedCloneTest : public GitTest {
 protected:
  void SetUp() override {
    GitTest::SetUp();
    clone_ = dir_ / "clone";
  }
  git::Repository open_clone() {
    auto repo = git::Repository::open(clone_);
    EXPECT_TRUE(repo.ok()) << repo.error();
    return std::move(*repo);
  }
  std::string master_objects() { return canonical(master_ + "/.git/objects"); }
  std::string clone_;
};

// A clone made with a plain `git clone`, before sharing existed, gains it at its first
// fetch: the new commit is read from the master, nothing is copied, and it checks out.
TEST_F(SharedCloneTest, CloneOfALocalMasterFetchesANewCommitWithoutCopyingIt) {
  test::clone_repo(master_, clone_);
  auto before = object_files(clone_);
  std::string fresh = commit_file(master_, "tests/new.txt", "made after the clone\n");
  auto repo = open_clone();
  ASSERT_FALSE(repo.has_commit(fresh));
  ASSERT_TRUE(repo.fetch("origin").ok());
  EXPECT_TRUE(repo.has_commit(fresh));
  auto tips = repo.branch_tips("origin");
  ASSERT_TRUE(tips.ok()) << tips.error();
  ASSERT_EQ(tips->size(), 1u);
  EXPECT_EQ((*tips)[0].commit, fresh);
  EXPECT_EQ(alternates_of(clone_), master_objects() + "\n");
  EXPECT_EQ(object_files(clone_), before) << "the fetch copied objects";

  ASSERT_TRUE(repo.checkout_detached(fresh).ok());
  EXPECT_EQ(test::read_text(clone_ + "/tests/new.txt"), "made after the clone\n");
  // git itself reads the clone the same way.
  EXPECT_EQ(git(clone_, {"cat-file", "-t", fresh}), "commit\n");
  git(clone_, {"fsck", "--no-progress", "--connectivity-only"});
}

// What the runner does for each job: a fresh open, then the commit is already there.
TEST_F(SharedCloneTest, OnceSharedANewCommitNeedsNoFetchAtAll) {
  test::clone_repo(master_, clone_);
  ASSERT_TRUE(open_clone().fetch("origin").ok());
  std::string fresh = commit_file(master_, "b.txt", "b");
  auto repo = open_clone();
  EXPECT_TRUE(repo.has_commit(fresh));
  ASSERT_TRUE(repo.checkout_detached(fresh).ok());
  EXPECT_EQ(test::read_text(clone_ + "/b.txt"), "b");
}

TEST_F(SharedCloneTest, ACloneMadeWithSharedIsLeftAsItIs) {
  test::run({"git", "clone", "-q", "--shared", master_, clone_});
  std::string listed = alternates_of(clone_);
  ASSERT_FALSE(listed.empty());
  std::string fresh = commit_file(master_, "c.txt", "c");
  auto repo = open_clone();
  auto shared = repo.share_objects("origin");
  ASSERT_TRUE(shared.ok()) << shared.error();
  EXPECT_TRUE(*shared);
  ASSERT_TRUE(repo.fetch("origin").ok());
  EXPECT_TRUE(repo.has_commit(fresh));
  EXPECT_EQ(alternates_of(clone_), listed);
}

TEST_F(SharedCloneTest, AFileUrlMasterIsSharedToo) {
  test::run({"git", "clone", "-q", "file://" + master_, clone_});
  auto before = object_files(clone_);
  std::string fresh = commit_file(master_, "d.txt", "d");
  auto repo = open_clone();
  ASSERT_TRUE(repo.fetch("origin").ok());
  EXPECT_TRUE(repo.has_commit(fresh));
  EXPECT_EQ(alternates_of(clone_), master_objects() + "\n");
  EXPECT_EQ(object_files(clone_), before);
}

// The master people push to is bare (see scripts/git-hooks/post-receive).
TEST_F(SharedCloneTest, ABareMasterIsSharedToo) {
  std::string bare = dir_ / "bare.git";
  test::run({"git", "clone", "-q", "--bare", master_, bare});
  test::clone_repo(bare, clone_);
  auto before = object_files(clone_);
  std::string fresh = commit_file(master_, "g.txt", "g");
  git(master_, {"push", "-q", bare, "master"});
  auto repo = open_clone();
  ASSERT_TRUE(repo.fetch("origin").ok());
  EXPECT_TRUE(repo.has_commit(fresh));
  EXPECT_EQ(alternates_of(clone_), canonical(bare + "/objects") + "\n");
  EXPECT_EQ(object_files(clone_), before);
}

TEST_F(SharedCloneTest, SharingCanBeTurnedOffPerClone) {
  test::clone_repo(master_, clone_);
  git(clone_, {"config", git::Repository::kShareObjectsKey, "false"});
  auto before = object_files(clone_);
  std::string fresh = commit_file(master_, "e.txt", "e");
  auto repo = open_clone();
  ASSERT_TRUE(repo.fetch("origin").ok());
  EXPECT_TRUE(repo.has_commit(fresh));
  EXPECT_FALSE(test::file_exists(clone_ + "/.git/objects/info/alternates"));
  EXPECT_NE(object_files(clone_), before) << "the commit should have been copied";
  // A clone that does not share stands alone: the master can go.
  std::filesystem::remove_all(master_);
  auto reopened = open_clone();
  EXPECT_TRUE(reopened.has_commit(fresh));
  ASSERT_TRUE(reopened.checkout_detached(fresh).ok());
}

TEST_F(SharedCloneTest, ARemoteElsewhereIsNotShared) {
  test::clone_repo(master_, clone_);
  git(clone_, {"remote", "set-url", "origin", "https://git.example.invalid/master.git"});
  auto shared = open_clone().share_objects("origin");
  ASSERT_TRUE(shared.ok()) << shared.error();
  EXPECT_FALSE(*shared);
  git(clone_, {"remote", "set-url", "origin", "../master"});  // relative: not shared either
  shared = open_clone().share_objects("origin");
  ASSERT_TRUE(shared.ok()) << shared.error();
  EXPECT_FALSE(*shared);
  EXPECT_FALSE(test::file_exists(clone_ + "/.git/objects/info/alternates"));
}

// `git gc` in the master packs the loose objects the clone reads and deletes them:
// the clone follows, through the repository it has open and a fresh one.
TEST_F(SharedCloneTest, GarbageCollectingTheMasterKeepsTheCloneWhole) {
  test::clone_repo(master_, clone_);
  auto repo = open_clone();
  std::string first = commit_file(master_, "f.txt", "1");
  ASSERT_TRUE(repo.fetch("origin").ok());
  ASSERT_TRUE(repo.checkout_detached(first).ok());
  git(master_, {"gc", "-q", "--prune=now"});
  git(master_, {"repack", "-q", "-a", "-d"});
  std::string second = commit_file(master_, "f.txt", "2");
  ASSERT_TRUE(repo.fetch("origin").ok());
  EXPECT_TRUE(repo.has_commit(first));
  ASSERT_TRUE(repo.checkout_detached(second).ok());
  ASSERT_TRUE(repo.checkout_detached(first).ok());
  EXPECT_EQ(test::read_text(clone_ + "/f.txt"), "1");
  auto fresh = open_clone();
  auto walked = fresh.commits_since(second, {test::head_commit(clone_)});
  ASSERT_TRUE(walked.ok()) << walked.error();
  EXPECT_EQ(*walked, std::vector<std::string>{second});
}

// A branch the master deletes, once pruned there, is gone from the clone too, even
// the commit checked out last: the next checkout must not depend on it.
TEST_F(SharedCloneTest, ACommitThePrunedMasterDroppedDoesNotBlockTheNextCheckout) {
  test::clone_repo(master_, clone_);
  git(master_, {"checkout", "-q", "-b", "doomed"});
  std::string doomed = commit_file(master_, "doomed.txt", "x");
  git(master_, {"checkout", "-q", "master"});
  {
    auto repo = open_clone();
    ASSERT_TRUE(repo.fetch("origin").ok());
    ASSERT_TRUE(repo.checkout_detached(doomed).ok());
  }
  git(master_, {"branch", "-q", "-D", "doomed"});
  git(master_, {"reflog", "expire", "--expire=now", "--all"});
  git(master_, {"gc", "-q", "--prune=now"});
  std::string next = commit_file(master_, "next.txt", "y");
  test::run({"sh", "-c", "echo left > " + clone_ + "/stray.txt"});

  auto repo = open_clone();
  EXPECT_FALSE(repo.has_commit(doomed));
  ASSERT_TRUE(repo.has_commit(next));
  auto done = repo.checkout_detached(next);
  ASSERT_TRUE(done.ok()) << done.error();
  EXPECT_EQ(test::read_text(clone_ + "/next.txt"), "y");
  EXPECT_FALSE(test::file_exists(clone_ + "/doomed.txt"));
  EXPECT_FALSE(test::file_exists(clone_ + "/stray.txt"));
  ASSERT_TRUE(repo.fetch("origin").ok());
  auto tips = repo.branch_tips("origin");
  ASSERT_TRUE(tips.ok()) << tips.error();
  ASSERT_EQ(tips->size(), 1u);
  EXPECT_EQ((*tips)[0].commit, next);
}

TEST(Git, OpeningAMissingRepositoryNamesThePath) {
  auto repo = git::Repository::open("/nonexistent/repo");
  ASSERT_FALSE(repo.ok());
  EXPECT_NE(repo.error().find("/nonexistent/repo"), std::string::npos);
}

}  // namespace
}  // namespace ci
