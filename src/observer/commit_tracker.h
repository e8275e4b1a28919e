// Decides which commits the observer hands over to the dispatcher, and remembers
// what it has handed over so that a restart neither misses nor repeats a commit.
//
// The state is one commit per branch: the last commit handed over (or counted as
// seen) on it. Everything reachable from any of these commits, on any branch, is
// never handed over again. Plain logic over a git::Repository: no sockets, no
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

class CommitTracker {
 public:
  using State = std::map<std::string, std::string>;  // branch -> commit

  // A tracker with no state: its first plan() counts every tip as seen.
  explicit CommitTracker(DispatchMode mode);

  // Reads a state file. A missing file gives a tracker with no state; a file that
  // cannot be read or parsed is an error naming it.
  static Result<CommitTracker> load(const std::string& path, DispatchMode mode);
  // Writes the state atomically; clears dirty() on success.
  Result<void> save(const std::string& path);

  // The state file's text: one "<branch> <commit>\n" line a branch, sorted.
  static std::string format_state(const State& state);
  static Result<State> parse_state(std::string_view text);

  // Given the current tips of the watched branches, returns what to hand over, in
  // order (parents before children, each commit once). May update the state by
  // itself where nothing needs handing over: on the first plan with no state, and
  // for a branch whose new tip is already reachable from what was handed over.
  // Hand the result over in order and call mark_handed_over() after each success.
  Result<std::vector<HandOver>> plan(const std::vector<git::BranchTip>& tips,
                                     const git::Repository& repo);
  void mark_handed_over(const std::string& branch, const std::string& commit);

  bool has_state() const { return has_state_; }
  // True when the state changed since it was loaded or last saved.
  bool dirty() const { return dirty_; }
  DispatchMode mode() const { return mode_; }
  const State& state() const { return state_; }

 private:
  void record(const std::string& branch, const std::string& commit);

  DispatchMode mode_;
  State state_;
  bool has_state_ = false;
  bool dirty_ = false;
};

}  // namespace ci::observer
