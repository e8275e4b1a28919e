// The fixture of the CommitTracker tests (commit_tracker_test.cpp and
// commit_tracker_pending_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "ci/git.h"
#include "observer/commit_tracker.h"
#include "test_support.h"

namespace ci::observer::test {

// A master repository and the observer's clone of it, read the way the observer
// reads it: fetch, then the remote-tracking branches.
class CommitTrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    master_ = tmp_ / "master";
    base_ = ci::test::make_master_repo(master_);
    clone_ = ci::test::clone_repo(master_, tmp_ / "clone");
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

  ci::test::TempDir tmp_;
  std::string master_;
  std::string base_;
  std::string clone_;
  std::optional<git::Repository> repo_;
  PlanReport last_;
};

}  // namespace ci::observer::test
