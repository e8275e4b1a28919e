// The libgit2 wrapper on real repositories.
#include "ci/git.h"

#include <gtest/gtest.h>

#include <cstdlib>

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

TEST(Git, OpeningAMissingRepositoryNamesThePath) {
  auto repo = git::Repository::open("/nonexistent/repo");
  ASSERT_FALSE(repo.ok());
  EXPECT_NE(repo.error().find("/nonexistent/repo"), std::string::npos);
}

}  // namespace
}  // namespace ci
