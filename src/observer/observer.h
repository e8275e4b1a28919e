// The observer daemon's loop: every interval (or at once when poked) it fetches
// its clone, asks the CommitTracker what is new on the watched branches, checks
// that the dispatcher answers `status`, and hands each commit over with
// `dispatch <commit> <branch>`, saving its state once at the end of the round.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ci/clock.h"
#include "ci/git.h"
#include "ci/mutex.h"
#include "ci/net.h"
#include "ci/result.h"
#include "ci/validate.h"
#include "observer/commit_tracker.h"
#include "observer/repo_files.h"

namespace ci::observer {

struct ObserverOptions {
  // The observer's own clone of the master repository, or the master itself (a
  // repository without an `origin` remote is read, never fetched).
  std::string repo;
  HostPort dispatcher{"localhost", 8888};
  std::chrono::milliseconds interval{5000};
  std::vector<std::string> branches;  // empty: every branch
  DispatchMode mode = DispatchMode::PerCommit;
  // A branch with more new commits in one round hands over its newest this many.
  size_t max_new_commits = CommitTracker::kDefaultMaxNewCommits;
  std::string state_file;  // empty: default_state_file(repo)
  // The repository it serves. Both empty: the default repository, dispatched without a
  // name, as ever. Otherwise a named repository, announced with `repo <name> <url>`
  // before its commits are dispatched with repo=<name>: a missing name is taken from
  // the URL (its last path component without ".git"), a missing URL is the clone's
  // origin URL (or, without an origin, the repository's own path).
  std::string repo_name;
  std::string repo_url;
  bool newest_first = false;  // announced as order=newest
  // Labels every commit's job requires, besides those of its `.ci/labels` file.
  std::vector<std::string> required;
  ClientOptions client;
  // Times the rounds: the wait of `interval` between them (and so the retry of what
  // the dispatcher refused or could not take) is on this clock. Tests give a FakeClock.
  // Network timeouts (`client`) stay on real time.
  Clock* clock = &Clock::real();
};

// <repo>/.git/ci-observer.state, or <repo>/ci-observer.state for a bare repository.
std::string default_state_file(const std::string& repo);

class Observer {
 public:
  explicit Observer(ObserverOptions options);
  ~Observer();  // stops
  Observer(const Observer&) = delete;
  Observer& operator=(const Observer&) = delete;

  // Opens the repository and reads the state file, then starts the poll thread,
  // whose first round runs at once. An error (missing or non-git repository,
  // corrupt state file) is one line naming the path. Call once.
  Result<void> start() EXCLUDES(join_mu_, state_mu_, mu_);
  // Wakes the loop and joins it; a round in progress stops before its next
  // hand-over and saves the state. Idempotent; thread-safe.
  void stop() EXCLUDES(join_mu_, mu_);
  // Wakes the loop for a round now instead of at the next deadline. Thread-safe.
  void poll_now() EXCLUDES(mu_);

  // Rounds finished since start(), whatever their outcome. Thread-safe.
  uint64_t rounds_completed() const { return rounds_.load(); }
  // A copy of the tracker's state: branch -> last commit handed over. Thread-safe.
  CommitTracker::State handed_over() const EXCLUDES(state_mu_);
  // Commits read by the walks of the history since start(): the work of planning.
  // Thread-safe.
  uint64_t commits_read() const { return commits_read_.load(); }
  const std::string& state_file() const { return state_file_; }
  bool fetches() const { return remote_.has_value(); }
  // The repository's name and URL once start() has worked them out ("" and "": the
  // default repository).
  const std::string& repo_name() const { return options_.repo_name; }
  const std::string& repo_url() const { return options_.repo_url; }

 private:
  // Logs the first failure of a streak as an error and the rest at debug level,
  // so that a dispatcher down for hours does not flood the log.
  class FailureStreak {
   public:
    explicit FailureStreak(std::string recovered) : recovered_(std::move(recovered)) {}
    void failed(const std::string& message);
    void succeeded();

   private:
    std::string recovered_;  // logged when a streak ends
    bool failing_ = false;
  };

  // The poll thread's loop, and what it alone touches (repo_, the streaks,
  // skipped_branches_): no lock for those.
  void run() EXCLUDES(mu_, state_mu_);
  void round() EXCLUDES(mu_, state_mu_);
  std::optional<std::vector<git::BranchTip>> watched_tips();
  void report_skipped(const std::vector<Skipped>& skipped);
  void hand_over_all(const std::vector<HandOver>& plan) EXCLUDES(mu_, state_mu_);
  bool dispatcher_ready(LineClient& client);
  bool announce(LineClient& client);
  std::vector<std::string> labels_for(const std::string& commit);
  bool hand_over(LineClient& client, const HandOver& item) EXCLUDES(state_mu_);
  void save_state() EXCLUDES(state_mu_);
  bool stopping() const EXCLUDES(mu_);

  ObserverOptions options_;
  std::string state_file_;
  std::optional<std::string> remote_;  // "origin" when the repository has one
  std::set<std::string> watched_;      // empty: every branch
  std::optional<git::Repository> repo_;
  std::optional<RepoFiles> files_;
  bool named_ = false;      // serves a named repository
  bool announced_ = false;  // the dispatcher has accepted the `repo` announcement

  mutable Mutex state_mu_;  // guards tracker_ against handed_over()
  std::optional<CommitTracker> tracker_ GUARDED_BY(state_mu_);

  mutable Mutex mu_;
  CondVar wake_;  // stopping_ or poked_ set
  bool stopping_ GUARDED_BY(mu_) = false;
  bool poked_ GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> rounds_{0};
  std::atomic<uint64_t> commits_read_{0};

  FailureStreak fetch_streak_{"fetching works again"};
  FailureStreak git_streak_{"reading the repository works again"};
  FailureStreak dispatcher_streak_{"dispatcher " + options_.dispatcher.str() + " answers again"};
  FailureStreak save_streak_{"the state file is written again"};
  FailureStreak announce_streak_{"the dispatcher accepts the repository's announcement again"};
  std::set<std::string> skipped_branches_;  // bad names, logged once each
  Mutex join_mu_;                           // serialises start's thread launch and stop's join
  std::thread thread_ GUARDED_BY(join_mu_);
};

}  // namespace ci::observer
