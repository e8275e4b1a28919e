#include "ci/git.h"

#include <git2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <queue>
#include <system_error>
#include <unordered_map>

#include "ci/files.h"

namespace ci::git {
namespace {

struct Library {
  Library() { git_libgit2_init(); }
  ~Library() { git_libgit2_shutdown(); }
};

void ensure_init() { static Library library; }

std::string last_error(const std::string& what) {
  const git_error* e = git_error_last();
  return what + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
using RemotePtr = std::unique_ptr<git_remote, Deleter<git_remote, git_remote_free>>;
using ObjectPtr = std::unique_ptr<git_object, Deleter<git_object, git_object_free>>;
using IteratorPtr = std::unique_ptr<git_reference_iterator,
                                    Deleter<git_reference_iterator, git_reference_iterator_free>>;
using ReferencePtr = std::unique_ptr<git_reference, Deleter<git_reference, git_reference_free>>;
using RepositoryPtr = std::unique_ptr<git_repository, Deleter<git_repository, git_repository_free>>;
using ConfigPtr = std::unique_ptr<git_config, Deleter<git_config, git_config_free>>;
using OdbPtr = std::unique_ptr<git_odb, Deleter<git_odb, git_odb_free>>;
using IndexPtr = std::unique_ptr<git_index, Deleter<git_index, git_index_free>>;

std::string oid_str(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, oid);
  return buf;
}

bool parse_oid(const std::string& id, git_oid* out) {
  return id.size() == GIT_OID_HEXSZ && git_oid_fromstr(out, id.c_str()) == 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The folder a remote URL names on this machine: an absolute path, or a file:// URL
// (percent-escapes decoded). "" for anything else: a network URL, scp-like
// "host:path", or a relative path (which libgit2 would resolve against the process's
// working folder, not the repository's).
std::string local_path_of_url(const std::string& url) {
  if (url.starts_with("/")) return url;
  const std::string scheme = "file://";
  if (!url.starts_with(scheme) || url.size() == scheme.size() || url[scheme.size()] != '/')
    return "";
  std::string path;
  for (size_t i = scheme.size(); i < url.size(); ++i) {
    int hi = 0;
    int lo = 0;
    if (url[i] == '%' && i + 2 < url.size() && (hi = hex_value(url[i + 1])) >= 0 &&
        (lo = hex_value(url[i + 2])) >= 0) {
      path += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      path += url[i];
    }
  }
  return path;
}

// The canonical absolute form of an existing folder, or "" if it cannot be resolved.
std::string canonical_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  auto canonical = std::filesystem::canonical(dir, ec);
  if (ec || !std::filesystem::is_directory(canonical, ec)) return "";
  return canonical.string();
}

// The object folder of a repository: <common dir>/objects.
std::string objects_dir(git_repository* repo) {
  return canonical_dir(std::filesystem::path(git_repository_commondir(repo)) / "objects");
}

// False when HEAD names a commit whose tree cannot be read (an unborn HEAD counts as
// readable: there is nothing to read).
bool head_tree_readable(git_repository* repo) {
  git_reference* head_raw = nullptr;
  int rc = git_repository_head(&head_raw, repo);
  if (rc == GIT_EUNBORNBRANCH) return true;
  if (rc != 0) return false;
  ReferencePtr head(head_raw);
  git_object* tree_raw = nullptr;
  rc = git_reference_peel(&tree_raw, head.get(), GIT_OBJECT_TREE);
  ObjectPtr tree(tree_raw);
  return rc == 0;
}

Result<bool> share_objects_of(git_repository* repo, const std::string& remote) {
  git_config* config_raw = nullptr;
  if (git_repository_config_snapshot(&config_raw, repo) != 0)
    return make_error(last_error("cannot read the configuration"));
  ConfigPtr config(config_raw);
  int share = 1;
  if (git_config_get_bool(&share, config.get(), Repository::kShareObjectsKey) != 0) share = 1;
  git_error_clear();
  if (!share) return false;

  git_remote* remote_raw = nullptr;
  if (git_remote_lookup(&remote_raw, repo, remote.c_str()) != 0)
    return make_error(last_error("no remote '" + remote + "'"));
  RemotePtr r(remote_raw);
  const char* url = git_remote_url(r.get());
  std::string master_path = local_path_of_url(url ? url : "");
  if (master_path.empty()) return false;

  git_repository* master_raw = nullptr;
  if (git_repository_open_ext(&master_raw, master_path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH,
                              nullptr) != 0)
    return make_error(last_error("cannot open remote '" + remote + "' at " + master_path));
  RepositoryPtr master(master_raw);
  std::string theirs = objects_dir(master.get());
  std::string ours = objects_dir(repo);
  if (theirs.empty() || ours.empty())
    return make_error("cannot find the object folders of " + master_path + " and " +
                      git_repository_path(repo));
  if (theirs == ours) return false;

  namespace fs = std::filesystem;
  fs::path alternates = fs::path(ours) / "info" / "alternates";
  std::string text;
  std::error_code ec;
  if (fs::exists(alternates, ec)) {
    auto read = read_file(alternates.string());
    if (!read) return make_error("cannot read " + alternates.string() + ": " + read.error());
    text = std::move(*read);
  }
  // Lines are absolute or relative to our object folder; '#' starts a comment.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    fs::path listed(line);
    if (listed.is_relative()) listed = fs::path(ours) / listed;
    if (canonical_dir(listed) == theirs) return true;
  }

  if (!text.empty() && text.back() != '\n') text += '\n';
  text += theirs + "\n";
  if (auto made = make_dirs(alternates.parent_path().string()); !made)
    return make_error("cannot share the objects of " + master_path + ": " + made.error());
  if (auto written = write_file_atomic(alternates.string(), text); !written)
    return make_error("cannot share the objects of " + master_path + ": " + written.error());
  // The file is read when the object database opens, which may have happened already.
  git_odb* odb_raw = nullptr;
  if (git_repository_odb(&odb_raw, repo) != 0)
    return make_error(last_error("cannot open the object database"));
  OdbPtr odb(odb_raw);
  if (git_odb_add_disk_alternate(odb.get(), theirs.c_str()) != 0)
    return make_error(last_error("cannot read the objects of " + master_path));
  return true;
}

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
    std::unique_ptr<git_commit, Deleter<git_commit, git_commit_free>> commit(raw);
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

Result<Repository> Repository::open(const std::string& path) {
  ensure_init();
  git_repository* repo = nullptr;
  if (git_repository_open_ext(&repo, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0)
    return make_error(last_error("no git repository at '" + path + "'"));
  return Repository(repo);
}

Repository::~Repository() {
  if (repo_) git_repository_free(repo_);
}

Repository::Repository(Repository&& other) noexcept
    : repo_(other.repo_),
      sharing_settled_(other.sharing_settled_),
      sharing_warned_(other.sharing_warned_) {
  other.repo_ = nullptr;
}

Repository& Repository::operator=(Repository&& other) noexcept {
  if (this != &other) {
    if (repo_) git_repository_free(repo_);
    repo_ = other.repo_;
    sharing_settled_ = other.sharing_settled_;
    sharing_warned_ = other.sharing_warned_;
    other.repo_ = nullptr;
  }
  return *this;
}

std::string Repository::workdir() const {
  const char* w = git_repository_workdir(repo_);
  return w ? w : git_repository_path(repo_);
}

bool Repository::has_remote(const std::string& name) const {
  git_remote* r = nullptr;
  if (git_remote_lookup(&r, repo_, name.c_str()) != 0) return false;
  git_remote_free(r);
  return true;
}

Result<bool> Repository::share_objects(const std::string& remote) {
  auto shared = share_objects_of(repo_, remote);
  // An error may pass (the master being moved, say): the next fetch tries again.
  sharing_settled_ = shared.ok();
  return shared;
}

std::vector<std::string> Repository::remove_stale_locks() {
  namespace fs = std::filesystem;
  std::vector<std::string> removed;
  std::error_code ec;
  fs::path git_dir = git_repository_path(repo_);
  auto remove = [&](const fs::path& path) {
    std::error_code err;
    if (fs::remove(path, err)) removed.push_back(path.string());
  };
  for (const char* name : {"index.lock", "HEAD.lock", "ORIG_HEAD.lock", "FETCH_HEAD.lock",
                           "packed-refs.lock", "config.lock", "shallow.lock"})
    remove(git_dir / name);
  for (auto it = fs::recursive_directory_iterator(git_dir / "refs", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().extension() == ".lock" && it->is_regular_file(ec)) remove(it->path());
  }
  return removed;
}

Result<void> Repository::fetch(const std::string& remote) {
  // Best effort: without sharing, the fetch copies the objects as it always did.
  if (!sharing_settled_) {
    auto shared = share_objects(remote);
    if (!shared && !sharing_warned_) {
      spdlog::warn("objects of '{}' not shared; fetches copy them: {}", remote, shared.error());
      sharing_warned_ = true;
    }
  }
  git_remote* raw = nullptr;
  if (git_remote_lookup(&raw, repo_, remote.c_str()) != 0)
    return make_error(last_error("no remote '" + remote + "'"));
  RemotePtr r(raw);
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.prune = GIT_FETCH_PRUNE;
  // Nothing reads FETCH_HEAD, and writing it costs two file creations per fetch.
  opts.update_fetchhead = 0;
  if (git_remote_fetch(r.get(), nullptr, &opts, nullptr) != 0)
    return make_error(last_error("fetch from '" + remote + "' failed"));
  return {};
}

Result<std::vector<BranchTip>> Repository::branch_tips(const std::string& remote) const {
  std::string prefix = remote.empty() ? "refs/heads/" : "refs/remotes/" + remote + "/";
  git_reference_iterator* raw = nullptr;
  std::string glob = prefix + "*";
  if (git_reference_iterator_glob_new(&raw, repo_, glob.c_str()) != 0)
    return make_error(last_error("cannot list branches"));
  IteratorPtr it(raw);
  std::vector<BranchTip> tips;
  git_reference* ref_raw = nullptr;
  while (git_reference_next(&ref_raw, it.get()) == 0) {
    ReferencePtr ref(ref_raw);
    std::string name = git_reference_name(ref.get());
    std::string branch = name.substr(prefix.size());
    if (branch == "HEAD" || git_reference_type(ref.get()) != GIT_REFERENCE_DIRECT) continue;
    git_object* obj = nullptr;
    if (git_reference_peel(&obj, ref.get(), GIT_OBJECT_COMMIT) != 0) continue;
    ObjectPtr commit(obj);
    tips.push_back({branch, oid_str(git_object_id(commit.get()))});
  }
  std::sort(tips.begin(), tips.end(),
            [](const BranchTip& a, const BranchTip& b) { return a.branch < b.branch; });
  return tips;
}

bool Repository::has_commit(const std::string& id) const {
  git_oid oid;
  if (!parse_oid(id, &oid)) return false;
  git_object* obj = nullptr;
  if (git_object_lookup(&obj, repo_, &oid, GIT_OBJECT_COMMIT) != 0) return false;
  git_object_free(obj);
  return true;
}

namespace {

// The commit `id` of `repo`, or why not.
Result<ObjectPtr> lookup_commit(git_repository* repo, const std::string& id, git_oid* oid) {
  if (!parse_oid(id, oid)) return make_error("bad commit id '" + id + "'");
  git_object* raw = nullptr;
  if (git_object_lookup(&raw, repo, oid, GIT_OBJECT_COMMIT) != 0)
    return make_error(last_error("commit " + id + " not found"));
  return ObjectPtr(raw);
}

}  // namespace

Result<void> Repository::checkout_detached(const std::string& id) {
  git_oid oid;
  auto found = lookup_commit(repo_, id, &oid);
  if (!found) return Error{found.error()};
  ObjectPtr commit = std::move(*found);
  git_checkout_options opts = GIT_CHECKOUT_OPTIONS_INIT;
  opts.checkout_strategy =
      GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
  if (git_checkout_tree(repo_, commit.get(), &opts) != 0) {
    // The checkout compares against HEAD's tree. In a clone that shares a master's
    // objects, HEAD may name a commit the master has since pruned (a deleted branch);
    // then compare against nothing: the forced checkout still ends clean.
    std::string failure = last_error("checkout of " + id + " failed");
    if (head_tree_readable(repo_)) return make_error(failure);
    git_index* empty_raw = nullptr;
    if (git_index_new(&empty_raw) != 0) return make_error(last_error("checkout of " + id));
    IndexPtr empty(empty_raw);
    opts.baseline_index = empty.get();
    if (git_checkout_tree(repo_, commit.get(), &opts) != 0)
      return make_error(last_error("checkout of " + id + " failed"));
  }
  if (git_repository_set_head_detached(repo_, &oid) != 0)
    return make_error(last_error("cannot move HEAD to " + id));
  return {};
}

Result<void> Repository::export_commit(const std::string& id, const std::string& dir) const {
  git_oid oid;
  auto found = lookup_commit(repo_, id, &oid);
  if (!found) return Error{found.error()};
  ObjectPtr commit = std::move(*found);
  // Compared against an empty index rather than HEAD and the clone's own index: no
  // cached stat data of any file is trusted, every file of the commit is written.
  git_index* empty_raw = nullptr;
  if (git_index_new(&empty_raw) != 0) return make_error(last_error("export of " + id));
  IndexPtr empty(empty_raw);
  git_checkout_options opts = GIT_CHECKOUT_OPTIONS_INIT;
  opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
  opts.baseline_index = empty.get();
  opts.target_directory = dir.c_str();
  if (git_checkout_tree(repo_, commit.get(), &opts) != 0)
    return make_error(last_error("export of " + id + " to " + dir + " failed"));
  return {};
}

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
