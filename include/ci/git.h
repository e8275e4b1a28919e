// RAII wrapper over the few libgit2 calls the daemons need. libgit2's own types stay
// out of this header. A Repository is used by one thread at a time.
#pragma once

#include <string>
#include <vector>

#include "ci/result.h"

struct git_repository;

namespace ci::git {

struct BranchTip {
  std::string branch;  // "main", "feature/x"
  std::string commit;  // hex id
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
  bool has_remote(const std::string& name) const;
  // Fetches the remote's configured refspecs, pruning branches it no longer has.
  Result<void> fetch(const std::string& remote);
  // With a remote: its tracking branches (refs/remotes/<remote>/*, not HEAD);
  // without: the local branches (refs/heads/*). Sorted by name.
  Result<std::vector<BranchTip>> branch_tips(const std::string& remote) const;
  bool has_commit(const std::string& id) const;
  // Force-checks out `id` with a detached HEAD, removing untracked and ignored files.
  Result<void> checkout_detached(const std::string& id);
  // Commits reachable from `tip` and from none of `hide` (ids absent from the
  // repository are skipped), parents before children.
  Result<std::vector<std::string>> commits_since(const std::string& tip,
                                                 const std::vector<std::string>& hide) const;

 private:
  explicit Repository(git_repository* repo) : repo_(repo) {}
  git_repository* repo_ = nullptr;
};

}  // namespace ci::git
