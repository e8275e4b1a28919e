// The repositories a runner started with --workdir provisions for itself: under
// <workdir>/repos, one bare object store a repository, <name>.git, cloned from the URL
// the job names the first time that repository comes up and fetched only when a job's
// commit is missing. A job's files are exported from the store into the job's own
// folder, as from the runner's clone (job_run.h).
//
// A clone is made under a temporary name, <name>.git.partial, and renamed into place
// only once complete: a runner killed while cloning leaves only that, which the next
// start (or the next clone of that repository) removes. A store that does not open, or
// whose origin is not the job's URL, is removed and cloned again. Clones and fetches
// that fail are tried a few times, with a short pause between, before the job fails
// with libgit2's reason and the URL.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "ci/fd.h"
#include "ci/mutex.h"
#include "ci/process.h"
#include "ci/result.h"
#include "ci/thread_annotations.h"
#include "runner/job_run.h"

namespace ci::runner {

class RepoStores {
 public:
  explicit RepoStores(std::string workdir);
  RepoStores(const RepoStores&) = delete;
  RepoStores& operator=(const RepoStores&) = delete;

  // Makes <workdir>/repos, takes the folder's lock (one runner a workdir) and removes
  // the clones an earlier run left unfinished.
  Result<void> open() EXCLUDES(mu_);
  // Writes the tree of `commit` of repository `name` (at `url`) into `dir`, cloning or
  // fetching the store first when needed. Two callers for one repository take turns;
  // other repositories go on meanwhile. `cancel` cuts the pauses between tries short.
  Result<void> export_to(const std::string& name, const std::string& url, const std::string& commit,
                         const std::string& dir, const CancelToken* cancel) EXCLUDES(mu_);

  const std::string& workdir() const { return workdir_; }
  std::string repos_dir() const;
  std::string store_path(const std::string& name) const;  // <workdir>/repos/<name>.git
  // Where a clone of `name` is made before it is complete.
  std::string partial_path(const std::string& name) const;
  // How many clones were made since start.
  unsigned clones() const EXCLUDES(mu_);

  // Tries of a clone or fetch within one job, and the first pause between them (doubled
  // after each).
  static constexpr int kTries = 3;
  static constexpr std::chrono::milliseconds kFirstPause{200};

 private:
  struct Store {
    Mutex mu;
    std::optional<Clone> clone GUARDED_BY(mu);  // the opened store, once it exists
    std::string url GUARDED_BY(mu);             // clone's origin
  };
  Store& store(const std::string& name) EXCLUDES(mu_);
  // The store of `name` ready for `url`: opened, or cloned when missing or unusable.
  Result<void> provision(Store& store, const std::string& name, const std::string& url)
      REQUIRES(store.mu) EXCLUDES(mu_);
  Result<void> make_clone(const std::string& name, const std::string& url) EXCLUDES(mu_);

  const std::string workdir_;
  UniqueFd lock_;
  mutable Mutex mu_;
  std::map<std::string, std::unique_ptr<Store>> stores_ GUARDED_BY(mu_);
  unsigned clones_ GUARDED_BY(mu_) = 0;
};

}  // namespace ci::runner
