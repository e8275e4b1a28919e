#include "observer/commit_tracker.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <system_error>

#include "ci/files.h"
#include "ci/validate.h"

namespace ci::observer {

CommitTracker::CommitTracker(DispatchMode mode, size_t max_new_commits)
    : mode_(mode), max_new_commits_(std::max<size_t>(max_new_commits, 1)) {}

Result<CommitTracker> CommitTracker::load(const std::string& path, DispatchMode mode,
                                          size_t max_new_commits) {
  CommitTracker tracker(mode, max_new_commits);
  std::error_code ec;
  bool exists = std::filesystem::exists(path, ec);
  if (ec) return make_error("cannot look at state file " + path + ": " + ec.message());
  if (!exists) return tracker;
  auto text = read_file(path);
  if (!text) return make_error("cannot read state file " + path + ": " + text.error());
  auto state = parse_state(*text);
  if (!state) return make_error("state file " + path + " is corrupt: " + state.error());
  tracker.state_ = std::move(*state);
  tracker.has_state_ = true;
  return tracker;
}

Result<void> CommitTracker::save(const std::string& path) {
  if (auto r = write_file_atomic(path, format_state(state_)); !r)
    return make_error("cannot write state file " + path + ": " + r.error());
  dirty_ = false;
  return {};
}

std::string CommitTracker::format_state(const State& state) {
  std::string out;
  for (const auto& [branch, commit] : state) out += branch + " " + commit + "\n";
  return out;
}

Result<CommitTracker::State> CommitTracker::parse_state(std::string_view text) {
  State state;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    std::string where = "line " + std::to_string(line_no) + ": ";
    size_t space = line.find(' ');
    if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos)
      return make_error(where + "expected '<branch> <commit>', got '" + escape_for_log(line, 80) +
                        "'");
    std::string branch(line.substr(0, space));
    std::string commit(line.substr(space + 1));
    if (auto why = check_branch_name(branch); !why.empty()) return make_error(where + why);
    if (auto why = check_commit_id(commit); !why.empty()) return make_error(where + why);
    commit = normalize_commit_id(commit);
    if (!state.emplace(branch, commit).second)
      return make_error(where + "branch '" + branch + "' appears twice");
  }
  return state;
}

Result<PlanReport> CommitTracker::plan(const std::vector<git::BranchTip>& tips,
                                       const git::Repository& repo) {
  PlanReport report;
  if (!has_state_) {
    // As in the seed, only what comes after the first look is tested: never the
    // whole history of a repository by surprise.
    for (const auto& tip : tips) {
      record(tip.branch, tip.commit);
      planned_tips_[tip.branch] = tip.commit;
    }
    has_state_ = true;
    dirty_ = true;
    return report;
  }
  // Everything pending has gone through: the tips it hid are now hidden by the state.
  if (pending_.empty()) {
    for (const auto& [branch, commit] : deferred_) record(branch, commit);
    deferred_.clear();
  }
  std::vector<const git::BranchTip*> moved;
  std::vector<std::string> moved_ids;
  for (const auto& tip : tips) {
    auto planned = planned_tips_.find(tip.branch);
    if (planned != planned_tips_.end() && planned->second == tip.commit) continue;
    auto known = state_.find(tip.branch);
    if (known != state_.end() && known->second == tip.commit) {
      planned_tips_[tip.branch] = tip.commit;
      deferred_.erase(tip.branch);
      continue;
    }
    moved.push_back(&tip);
    moved_ids.push_back(tip.commit);
  }
  if (moved.empty()) return report;

  // Every branch's last commit hides its history from every other branch, so a
  // commit shared by several branches is handed over once; the tips planned before
  // hide what is pending. One walk for all the branches that moved: each new commit
  // goes with the first of them that reaches it.
  std::set<std::string> hide_set;
  for (const auto& entry : state_) hide_set.insert(entry.second);
  for (const auto& entry : planned_tips_) hide_set.insert(entry.second);
  std::vector<std::string> hide(hide_set.begin(), hide_set.end());
  auto found = repo.new_history(moved_ids, hide);
  if (!found) return Error{found.error()};
  report.commits_read = found->commits_read;
  std::vector<std::vector<git::NewCommit>> per_tip(moved.size());
  for (auto& commit : found->commits) per_tip[commit.tip].push_back(std::move(commit));

  // Recording a tip is safe only if it is hidden by what was handed over; if it is
  // hidden by pending commits (earlier ones, or those of a branch before it in this
  // plan), it is recorded once they have gone through.
  bool hidden_by_state = pending_.empty();
  for (size_t i = 0; i < moved.size(); ++i) {
    const auto& tip = *moved[i];
    planned_tips_[tip.branch] = tip.commit;
    deferred_.erase(tip.branch);
    if (per_tip[i].empty()) {
      if (found->tip_hidden[i] && hidden_by_state) {
        record(tip.branch, tip.commit);
      } else {
        deferred_[tip.branch] = tip.commit;
      }
      continue;
    }
    add(tip.branch, std::move(per_tip[i]), &report);
  }
  return report;
}

void CommitTracker::add(const std::string& branch, std::vector<git::NewCommit> commits,
                        PlanReport* report) {
  if (mode_ == DispatchMode::LatestOnly) {
    // Only the newest commit of a branch: it replaces one still waiting.
    HandOver item{branch, commits.back().id};
    auto waiting = std::find_if(pending_.begin(), pending_.end(),
                                [&](const HandOver& h) { return h.branch == branch; });
    if (waiting != pending_.end()) {
      *waiting = item;
    } else {
      pending_.push_back(item);
    }
    report->added.push_back(std::move(item));
    return;
  }
  size_t first = 0;
  if (commits.size() > max_new_commits_) {
    first = commits.size() - max_new_commits_;
    report->skipped.push_back({branch, first, commits.front().id, commits[first - 1].id});
  }
  for (size_t i = first; i < commits.size(); ++i) {
    pending_.push_back({branch, std::move(commits[i].id)});
    report->added.push_back(pending_.back());
  }
}

void CommitTracker::mark_handed_over(const std::string& branch, const std::string& commit) {
  record(branch, commit);
  has_state_ = true;
  HandOver item{branch, commit};
  auto at = std::find(pending_.begin(), pending_.end(), item);
  if (at != pending_.end()) pending_.erase(at);
}

void CommitTracker::record(const std::string& branch, const std::string& commit) {
  auto& slot = state_[branch];
  if (slot == commit) return;
  slot = commit;
  dirty_ = true;
}

}  // namespace ci::observer
