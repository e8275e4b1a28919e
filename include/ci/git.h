// RAII wrapper over the few libgit2 calls the daemons need. libgit2's own types stay
// out of this header. A Repository is used by one thread at a time.
#pragma once

#include <string>
#include <vector>

#include "ci/events.h"
#include "ci/result.h"

struct git_repository;

namespace ci::git {

struct BranchTip {
  std::string branch;  // "main", "feature/x"
  std::string commit;  // hex id
};

// What Repository::new_history() found.
//
// The walk goes from the tips and the hidden commits together, newest commit first, and
// stops once no commit left to read can be an ancestor of a new one: its work is the new
// commits plus the hidden history back to the date of the oldest new one (a few commits
// when the new ones are recent, as pushed commits are). It trusts that a commit is not
// older than its parents, as git's own walks do (within a margin of a few commits); a
// history whose dates go backwards by more than that can show an old commit as new.
// Commits with equal dates are no problem.
struct NewCommit {
  std::string id;
  size_t tip = 0;  // the first of the tips, in the order given, it is reachable from
};
struct NewHistory {
  // Parents before children; of the commits whose parents are all listed before them,
  // the oldest (by commit date) first.
  std::vector<NewCommit> commits;
  // Per tip: reachable from a hidden commit (then no commit is listed for it).
  std::vector<bool> tip_hidden;
  // The commits the walk read, new and hidden: the work it did.
  size_t commits_read = 0;
};

class Repository {
 public:
  // Opens an existing repository (the work tree or the .git folder).
  static Result<Repository> open(const std::string& path);
  ~Repository();
  Repository(Repository&& other) noexcept;
  Repository& operator=(Repository&& other) noexcept;
  Repository(const Repository&) = delete;
  Repository& operator=(const Repository&) = delete;

  std::string workdir() const;
  // Removes the lock files a process killed in the middle of a git write leaves behind
  // (index.lock, HEAD.lock, packed-refs.lock, refs/**.lock, ...): while one is there,
  // every later fetch or checkout fails. Only for a repository this process owns alone.
  // Returns the paths removed.
  std::vector<std::string> remove_stale_locks();
  bool has_remote(const std::string& name) const;
  // Fetches the remote's configured refspecs, pruning branches it no longer has.
  // Calls share_objects() first (once per Repository, and again after an error), so a
  // clone of a master on this machine fetches a new commit without copying it.
  Result<void> fetch(const std::string& remote);

  // When `remote` is a repository on this machine (an absolute path or a file:// URL,
  // as `git clone` writes), makes this repository read that one's objects instead of
  // copying them, as `git clone --shared` does: its object folder is listed in
  // objects/info/alternates (added to the file if missing, never removed). A fetch
  // then only moves refs. The clone then depends on the master: objects reachable from
  // the master's refs stay readable through any `git gc` or repack there, but the clone
  // breaks if the master is deleted, and a commit the master drops (a branch deleted or
  // rewritten) becomes unreadable once the master prunes it (`git gc` waits two weeks by
  // default). True when the objects are shared (now or already); false when the remote
  // is elsewhere, or the configuration value tinyci.shareObjects is false (which keeps
  // a clone that does not share yet independent).
  Result<bool> share_objects(const std::string& remote);
  static constexpr const char* kShareObjectsKey = "tinyci.shareObjects";
  // With a remote: its tracking branches (refs/remotes/<remote>/*, not HEAD);
  // without: the local branches (refs/heads/*). Sorted by name.
  Result<std::vector<BranchTip>> branch_tips(const std::string& remote) const;
  bool has_commit(const std::string& id) const;
  // Force-checks out `id` with a detached HEAD, removing untracked and ignored files.
  Result<void> checkout_detached(const std::string& id);
  // Writes the tree of commit `id` into `dir` (which should be new and empty), as a
  // plain folder with no .git: the repository's index, HEAD and work tree are neither
  // read nor changed, so nothing a test did to an earlier checkout can leak in.
  Result<void> export_commit(const std::string& id, const std::string& dir) const;
  // Who wrote a commit and its subject line, for people reading results.
  Result<CommitInfo> commit_info(const std::string& id) const;
  // The commits reachable from any of `tips` and from none of `hide`, found by one walk
  // of the history from all of them at once (see NewHistory). A tip the repository does
  // not have is an error; ids in `hide` it does not have are skipped.
  Result<NewHistory> new_history(const std::vector<std::string>& tips,
                                 const std::vector<std::string>& hide) const;
  // Commits reachable from `tip` and from none of `hide` (ids absent from the
  // repository are skipped), parents before children: new_history() of one tip.
  Result<std::vector<std::string>> commits_since(const std::string& tip,
                                                 const std::vector<std::string>& hide) const;

 private:
  explicit Repository(git_repository* repo) : repo_(repo) {}
  git_repository* repo_ = nullptr;
  bool sharing_settled_ = false;  // share_objects() has given its answer
  bool sharing_warned_ = false;   // a failure to share has been logged
};

}  // namespace ci::git
