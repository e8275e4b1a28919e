// Repository::new_history: the walk of the history that finds what is new on a set of
// branches, and the order in which those commits are handed over (see NewHistory in
// ci/git.h).
#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <queue>
#include <unordered_map>

#include "ci/git.h"
#include "git_internal.h"

namespace ci::git {
namespace {

struct OidHash {
  size_t operator()(const git_oid& oid) const {
    size_t h;
    std::memcpy(&h, oid.id, sizeof h);
    return h;
  }
};
struct OidEqual {
  bool operator()(const git_oid& a, const git_oid& b) const { return git_oid_cmp(&a, &b) == 0; }
};

// One walk from the new tips and the hidden commits at once, newest first (the way git
// marks a range "A ^B ^C" as uninteresting), then the new commits put in order. See
// NewHistory in the header.
class HistoryWalk {
 public:
  explicit HistoryWalk(git_repository* repo) : repo_(repo) {}

  Result<NewHistory> run(const std::vector<std::string>& tips,
                         const std::vector<std::string>& hide) {
    std::vector<uint32_t> tip_nodes;
    for (const auto& tip : tips) {
      git_oid oid;
      if (!parse_oid(tip, &oid)) return make_error("bad commit id '" + tip + "'");
      auto n = node(oid);
      if (!n) return make_error(last_error("commit " + tip + " not found"));
      tip_nodes.push_back(*n);
      mark_new(*n);
    }
    for (const auto& id : hide) {
      git_oid oid;
      if (!parse_oid(id, &oid)) continue;
      auto n = node(oid);
      if (!n) {
        git_error_clear();  // a commit the repository does not have hides nothing
        continue;
      }
      mark_hidden(*n);
    }
    if (auto walked = walk(); !walked) return Error{walked.error()};

    NewHistory out;
    out.commits_read = nodes_.size();
    for (uint32_t n : tip_nodes) out.tip_hidden.push_back(nodes_[n].flags & kHidden);
    order(tip_nodes, &out);
    return out;
  }

 private:
  enum : uint8_t { kNew = 1, kHidden = 2, kQueued = 4, kRead = 8 };
  // Allowed steps past the point where only old hidden commits are left, as git's
  // "slop": a little tolerance of dates that go backwards.
  static constexpr int kSlop = 5;

  struct Node {
    git_oid oid;
    int64_t time = 0;
    std::vector<git_oid> parent_ids;
    std::vector<uint32_t> parents;  // filled when the node is read out of the queue
    uint8_t flags = 0;
    uint32_t popped = 0;  // when it left the queue, counting from 1
  };
  struct Queued {
    int64_t time;
    uint32_t seq;
    uint32_t node;
    bool operator<(const Queued& o) const {  // newest first, then first come
      return time != o.time ? time < o.time : seq > o.seq;
    }
  };

  bool interesting(const Node& n) const { return (n.flags & (kNew | kHidden)) == kNew; }

  // The node of a commit, reading the commit the first time; nullopt when the
  // repository does not have it.
  std::optional<uint32_t> node(const git_oid& oid) {
    auto found = index_.find(oid);
    if (found != index_.end()) return found->second;
    git_commit* raw = nullptr;
    if (git_commit_lookup(&raw, repo_, &oid) != 0) return std::nullopt;
    CommitPtr commit(raw);
    Node n;
    n.oid = oid;
    n.time = git_commit_time(commit.get());
    unsigned count = git_commit_parentcount(commit.get());
    for (unsigned i = 0; i < count; ++i)
      n.parent_ids.push_back(*git_commit_parent_id(commit.get(), i));
    auto id = static_cast<uint32_t>(nodes_.size());
    nodes_.push_back(std::move(n));
    index_.emplace(oid, id);
    return id;
  }

  void enqueue(uint32_t id) {
    Node& n = nodes_[id];
    if (n.flags & (kQueued | kRead)) return;
    n.flags |= kQueued;
    if (interesting(n)) ++interesting_queued_;
    queue_.push({n.time, seq_++, id});
  }

  void mark_new(uint32_t id) {
    Node& n = nodes_[id];
    if (n.flags & (kNew | kHidden)) return enqueue(id);
    n.flags |= kNew;
    if (n.flags & kQueued) ++interesting_queued_;
    enqueue(id);
  }

  // Marks the commit hidden, and with it every ancestor the walk has already gone
  // past (those still queued carry the mark on when they are read).
  void mark_hidden(uint32_t id) {
    std::vector<uint32_t> stack{id};
    while (!stack.empty()) {
      Node& n = nodes_[stack.back()];
      uint32_t current = stack.back();
      stack.pop_back();
      if (n.flags & kHidden) continue;
      if ((n.flags & kQueued) && interesting(n)) --interesting_queued_;
      n.flags |= kHidden;
      if (n.flags & kRead) {
        for (uint32_t p : n.parents) stack.push_back(p);
      } else {
        enqueue(current);
      }
    }
  }

  Result<void> walk() {
    int slop = kSlop;
    int64_t oldest_new = std::numeric_limits<int64_t>::max();
    uint32_t popped = 0;
    while (!queue_.empty()) {
      if (interesting_queued_ == 0) {
        // Only hidden commits are queued: go on while one of them may still be a
        // descendant of a new commit, i.e. is not older than the oldest new one.
        if (queue_.top().time < oldest_new) {
          if (--slop <= 0) break;
        } else {
          slop = kSlop;
        }
      }
      uint32_t id = queue_.top().node;
      queue_.pop();
      Node& n = nodes_[id];
      bool is_new = interesting(n);
      if (is_new) --interesting_queued_;
      n.flags = static_cast<uint8_t>((n.flags & ~kQueued) | kRead);
      n.popped = ++popped;
      if (is_new) {
        oldest_new = std::min(oldest_new, n.time);
        read_new_.push_back(id);
      }
      // `n` may move as parents are read: copy what is needed first.
      std::vector<git_oid> parent_ids = n.parent_ids;
      std::vector<uint32_t> parents;
      for (const auto& pid : parent_ids) {
        auto p = node(pid);
        if (!p) return make_error(last_error("commit " + oid_str(&pid) + " not found"));
        parents.push_back(*p);
      }
      nodes_[id].parents = parents;
      bool hidden = nodes_[id].flags & kHidden;
      for (uint32_t p : parents) {
        if (hidden) {
          mark_hidden(p);
        } else {
          mark_new(p);
        }
      }
    }
    return {};
  }

  // The new commits (read as new, not hidden since): parents first, oldest first among
  // those ready, each attributed to the first tip it is reachable from.
  void order(const std::vector<uint32_t>& tip_nodes, NewHistory* out) {
    std::unordered_map<uint32_t, size_t> position;  // node -> index in `fresh`
    std::vector<uint32_t> fresh;
    for (uint32_t id : read_new_) {
      if (nodes_[id].flags & kHidden) continue;
      position.emplace(id, fresh.size());
      fresh.push_back(id);
    }
    std::vector<size_t> waiting(fresh.size(), 0);  // parents not yet placed
    std::vector<std::vector<size_t>> children(fresh.size());
    for (size_t i = 0; i < fresh.size(); ++i) {
      for (uint32_t p : nodes_[fresh[i]].parents) {
        auto at = position.find(p);
        if (at == position.end()) continue;
        ++waiting[i];
        children[at->second].push_back(i);
      }
    }
    // Oldest first; between equal dates, the one the walk read later (further down).
    auto later = [&](size_t a, size_t b) {
      const Node& x = nodes_[fresh[a]];
      const Node& y = nodes_[fresh[b]];
      return x.time != y.time ? x.time > y.time : x.popped < y.popped;
    };
    std::priority_queue<size_t, std::vector<size_t>, decltype(later)> ready(later);
    for (size_t i = 0; i < fresh.size(); ++i)
      if (waiting[i] == 0) ready.push(i);
    std::vector<size_t> sorted;
    sorted.reserve(fresh.size());
    while (!ready.empty()) {
      size_t i = ready.top();
      ready.pop();
      sorted.push_back(i);
      for (size_t c : children[i])
        if (--waiting[c] == 0) ready.push(c);
    }
    // Each commit goes with the first tip it is reachable from: children pass their
    // tip on to their parents.
    constexpr size_t kNone = std::numeric_limits<size_t>::max();
    std::vector<size_t> tip_of(fresh.size(), kNone);
    for (size_t t = 0; t < tip_nodes.size(); ++t) {
      auto at = position.find(tip_nodes[t]);
      if (at != position.end()) tip_of[at->second] = std::min(tip_of[at->second], t);
    }
    for (auto it = sorted.rbegin(); it != sorted.rend(); ++it) {
      for (uint32_t p : nodes_[fresh[*it]].parents) {
        auto at = position.find(p);
        if (at != position.end()) tip_of[at->second] = std::min(tip_of[at->second], tip_of[*it]);
      }
    }
    for (size_t i : sorted) {
      // Every new commit is reached from a tip through new commits; kNone cannot occur.
      size_t tip = tip_of[i] == kNone ? 0 : tip_of[i];
      out->commits.push_back({oid_str(&nodes_[fresh[i]].oid), tip});
    }
  }

  git_repository* repo_;
  std::vector<Node> nodes_;
  std::unordered_map<git_oid, uint32_t, OidHash, OidEqual> index_;
  std::priority_queue<Queued> queue_;
  uint32_t seq_ = 0;
  size_t interesting_queued_ = 0;   // queued commits that are new and not hidden
  std::vector<uint32_t> read_new_;  // read while new and not hidden, in that order
};

}  // namespace

Result<NewHistory> Repository::new_history(const std::vector<std::string>& tips,
                                           const std::vector<std::string>& hide) const {
  HistoryWalk walk(repo_);
  return walk.run(tips, hide);
}

Result<std::vector<std::string>> Repository::commits_since(
    const std::string& tip, const std::vector<std::string>& hide) const {
  auto found = new_history({tip}, hide);
  if (!found) return Error{found.error()};
  std::vector<std::string> out;
  out.reserve(found->commits.size());
  for (auto& commit : found->commits) out.push_back(std::move(commit.id));
  return out;
}

}  // namespace ci::git
