#include "commit_tracker.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

#include "ci/files.h"
#include "ci/validate.h"

namespace ci::observer {

CommitTracker::CommitTracker(DispatchMode mode) : mode_(mode) {}

Result<CommitTracker> CommitTracker::load(const std::string& path, DispatchMode mode) {
  CommitTracker tracker(mode);
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
    std::transform(commit.begin(), commit.end(), commit.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!state.emplace(branch, commit).second)
      return make_error(where + "branch '" + branch + "' appears twice");
  }
  return state;
}

Result<std::vector<HandOver>> CommitTracker::plan(const std::vector<git::BranchTip>& tips,
                                                  const git::Repository& repo) {
  std::vector<HandOver> out;
  if (!has_state_) {
    // As in the seed, only what comes after the first look is tested: never the
    // whole history of a repository by surprise.
    for (const auto& tip : tips) record(tip.branch, tip.commit);
    has_state_ = true;
    dirty_ = true;
    return out;
  }
  // Every branch's last commit hides its history from every other branch, so a
  // commit shared by several branches is handed over once.
  std::vector<std::string> seen;
  for (const auto& entry : state_) seen.push_back(entry.second);
  // What this plan hands over hides it from the branches walked after it.
  std::vector<std::string> hide = seen;
  for (const auto& tip : tips) {
    auto known = state_.find(tip.branch);
    if (known != state_.end() && known->second == tip.commit) continue;
    auto fresh = repo.commits_since(tip.commit, hide);
    if (!fresh) return Error{fresh.error()};
    if (fresh->empty()) {
      // Recording the tip is safe only if it is hidden by what was already handed
      // over; if it is hidden by this plan's hand-overs, a later plan records it
      // once they have gone through.
      bool hidden_by_seen = hide.size() == seen.size();
      if (!hidden_by_seen) {
        auto unseen = repo.commits_since(tip.commit, seen);
        if (!unseen) return Error{unseen.error()};
        hidden_by_seen = unseen->empty();
      }
      if (hidden_by_seen) record(tip.branch, tip.commit);
      continue;
    }
    if (mode_ == DispatchMode::LatestOnly) {
      out.push_back({tip.branch, tip.commit});
    } else {
      for (auto& commit : *fresh) out.push_back({tip.branch, std::move(commit)});
    }
    hide.push_back(tip.commit);
  }
  return out;
}

void CommitTracker::mark_handed_over(const std::string& branch, const std::string& commit) {
  record(branch, commit);
  has_state_ = true;
}

void CommitTracker::record(const std::string& branch, const std::string& commit) {
  auto& slot = state_[branch];
  if (slot == commit) return;
  slot = commit;
  dirty_ = true;
}

}  // namespace ci::observer
