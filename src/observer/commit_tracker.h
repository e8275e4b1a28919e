// Decides which commits the observer hands over to the dispatcher, and remembers
// what it has handed over so that a restart neither misses nor repeats a commit.
//
// The state is one commit per branch: the last commit handed over (or counted as
// seen) on it. Everything reachable from any of these commits, on any branch, is
// never handed over again. What is planned and not yet handed over waits in
// pending(); a later plan only adds what is new since, with one walk of the history
// from the branches that moved. Plain logic over a git::Repository: no sockets, no
// threads, no logging. Not thread-safe.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ci/git.h"
#include "ci/result.h"

namespace ci::observer {

enum class DispatchMode {
  PerCommit,   // every new commit, oldest first
  LatestOnly,  // each changed branch's newest commit only
};

struct HandOver {
  std::string branch;
  std::string commit;
  bool operator==(const HandOver&) const = default;
};

// The oldest commits of a branch left out of a plan by the cap on new commits.
struct Skipped {
  std::string branch;
  size_t count = 0;
  std::string oldest;  // the first commit left out (parents before children)
  std::string newest;  // the last
  bool operator==(const Skipped&) const = default;
};

// What one plan() did.
struct PlanReport {
  std::vector<HandOver> added;  // appended to pending(), in order
  std::vector<Skipped> skipped;
  size_t commits_read = 0;  // by the walk of the history: 0 when no branch moved
};

class CommitTracker {
 public:
  using State = std::map<std::string, std::string>;  // branch -> commit

  static constexpr size_t kDefaultMaxNewCommits = 1000;

  // A tracker with no state: its first plan() counts every tip as seen. A branch with
  // more than `max_new_commits` new commits in one plan hands over only its newest
  // `max_new_commits` (its tip among them).
  explicit CommitTracker(DispatchMode mode, size_t max_new_commits = kDefaultMaxNewCommits);

  // Reads a state file. A missing file gives a tracker with no state; a file that
  // cannot be read or parsed is an error naming it.
  static Result<CommitTracker> load(const std::string& path, DispatchMode mode,
                                    size_t max_new_commits = kDefaultMaxNewCommits);
  // Writes the state atomically; clears dirty() on success.
  Result<void> save(const std::string& path);

  // The state file's text: one "<branch> <commit>\n" line a branch, sorted.
  static std::string format_state(const State& state);
  static Result<State> parse_state(std::string_view text);

  // Given the current tips of the watched branches, adds to pending() what is new on
  // them since the last plan (parents before children, oldest first, branch after
  // branch in the order given, each commit once whatever branches it is on). Only
  // the branches whose tip moved since the last plan are walked, in one walk, with
  // everything handed over or pending hidden. May update the state by itself where
  // nothing needs handing over: on the first plan with no state, and for a branch
  // whose new tip is already reachable from what was handed over.
  Result<PlanReport> plan(const std::vector<git::BranchTip>& tips, const git::Repository& repo);
  // What is planned and not yet handed over, in order: hand it over in that order and
  // call mark_handed_over() after each success.
  const std::vector<HandOver>& pending() const { return pending_; }
  void mark_handed_over(const std::string& branch, const std::string& commit);

  bool has_state() const { return has_state_; }
  // True when the state changed since it was loaded or last saved.
  bool dirty() const { return dirty_; }
  DispatchMode mode() const { return mode_; }
  size_t max_new_commits() const { return max_new_commits_; }
  const State& state() const { return state_; }

 private:
  void record(const std::string& branch, const std::string& commit);
  void add(const std::string& branch, std::vector<git::NewCommit> commits, PlanReport* report);

  DispatchMode mode_;
  size_t max_new_commits_;
  State state_;
  bool has_state_ = false;
  bool dirty_ = false;
  std::vector<HandOver> pending_;
  // The tip of each branch at the last plan: a branch still there is not walked again.
  State planned_tips_;
  // Branches whose new tip brought no commit of its own, as it is reachable from
  // pending commits of other branches: recorded once those have been handed over.
  State deferred_;
};

}  // namespace ci::observer
