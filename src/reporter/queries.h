// The reading side of the read model: what the API, the pages, the badges and the
// metrics show, as JSON. Each object has its own SQLite connection (WAL: reads never
// wait for the follower's writes); use one per thread, or take them from a QueryPool.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ci/events.h"
#include "ci/mutex.h"
#include "ci/result.h"

namespace ci::reporter {

struct JobFilter {
  std::optional<std::string> repo;  // none: any; "": the default repository
  std::string branch;               // "": any
  std::string status;               // a TestStatus or a job state; "": any
  uint64_t limit = 50;
  JobId before = 0;  // 0: from the newest
};

// What /metrics counts.
struct Counts {
  std::map<std::string, int64_t> jobs_by_state, jobs_by_status, runners_by_state;
  // Queued jobs, and those of them waiting for a runner that could take them, by
  // repository ("": the default one).
  std::map<std::string, int64_t> queued_by_repo, waiting_by_repo;
  uint64_t last_seq = 0;
};

class Queries {
 public:
  static Result<std::unique_ptr<Queries>> open(const std::string& path);
  ~Queries();

  // {"jobs": [...newest first], "next_before": id or null}
  Result<nlohmann::json> jobs(const JobFilter& filter);
  Result<std::optional<JobInfo>> job(JobId id, uint64_t* log_size = nullptr);
  // {"job", "attempt", "cases": [failures first, each with "flaky" and, failing,
  // "broken_by": {"job", "commit", "author", "subject", "commits_ago"}]}
  Result<nlohmann::json> tests(const JobInfo& job, uint32_t attempt);
  // {"commit", "jobs": [...]}; `sha` is a full id or a prefix of at least 4 characters;
  // `repo`: of that repository only ("": the default one).
  Result<nlohmann::json> commit(const std::string& sha, const std::optional<std::string>& repo);
  // [{"repo", "name", "state", "since": {job, commit, author}, "latest": job}] by repository
  // and name; `repo`: of that repository only ("": the default one).
  Result<nlohmann::json> branches(const std::optional<std::string>& repo);
  // The repositories with a job, by name ("" the default one first): [{"name", "jobs",
  // "queued", "waiting", "running", "finished", "passed", "failed", "cancelled",
  // "latest_job", "branches": [branches() without "repo"]}]
  Result<nlohmann::json> repos();
  Result<nlohmann::json> runners();
  // The test's outcome in the last `limit` jobs of the branch that ran it, newest first.
  Result<nlohmann::json> history(const std::string& repo, const std::string& branch,
                                 const std::string& name, uint64_t limit);
  // "passing", "failing" or "unknown", of the branch of `repo` ("": the default one).
  Result<std::string> branch_state(const std::string& repo, const std::string& branch);
  Result<Counts> counts();

 private:
  struct Impl;
  explicit Queries(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A few Queries shared by the HTTP threads: borrow one for a request.
class QueryPool {
 public:
  explicit QueryPool(std::string path) : path_(std::move(path)) {}
  class Lease {
   public:
    Lease(QueryPool& pool, std::unique_ptr<Queries> q) : pool_(pool), q_(std::move(q)) {}
    ~Lease() { pool_.give_back(std::move(q_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Queries* operator->() { return q_.get(); }

   private:
    QueryPool& pool_;
    std::unique_ptr<Queries> q_;
  };
  Result<std::unique_ptr<Lease>> lease() EXCLUDES(mutex_);

 private:
  void give_back(std::unique_ptr<Queries> q) EXCLUDES(mutex_);
  std::string path_;
  Mutex mutex_;
  std::vector<std::unique_ptr<Queries>> free_ GUARDED_BY(mutex_);
};

}  // namespace ci::reporter
