// `cictl show`: a job, its tests, and for each failing test the commit that broke it.
// The pure parts, apart from the asking: finding a job by a commit prefix, the
// broken-by walk over a branch's earlier jobs, and what is printed.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ci/events.h"
#include "ci/replies.h"
#include "ci/result.h"
#include "ci/test_cases.h"

namespace ci {

// A commit prefix names a job when it has at least this many hex digits.
inline constexpr size_t kMinCommitPrefix = 7;
// How far back along a branch the broken-by walk looks.
inline constexpr size_t kBrokenByDepth = 50;

bool is_commit_prefix(const std::string& text);  // >= kMinCommitPrefix hex digits
// The newest job of the one commit that starts with `prefix`; an error when no job's
// commit does, or when the prefix fits several commits (they are named). With `repo`,
// only the jobs of that repository ("-" or "": the default one) are looked at.
Result<JobId> job_of_commit(const JobsReply& jobs, const std::string& prefix,
                            const std::optional<std::string>& repo = std::nullopt);
// The repositories with a job of the one commit that starts with `prefix`, sorted, the
// default one as "-"; empty when the prefix fits no commit or several.
std::vector<std::string> repos_of_commit(const JobsReply& jobs, const std::string& prefix);

// An earlier finished job of the branch, as the walk reads it.
struct PastRun {
  JobId job = 0;
  std::string commit;
  std::vector<TestCase> cases;
};

// For one failing test: where it started failing.
struct BrokenBy {
  std::string test;
  JobId job = 0;           // the earliest job of the consecutive failing ones
  std::string commit;      // its commit
  std::string author;      // filled in by the caller, from that job's commit info
  size_t commits_ago = 0;  // 0: this job
  bool every = false;      // it failed in every job looked at: no passing one found
  size_t looked = 0;       // jobs looked at, this one included
};

// Walks a branch back, newest first, one earlier job at a time, for every test that
// failed (or errored) in `job`. A job with no test cases (a build error, a cancel) says
// nothing and is stepped over; one where the test passed, was skipped or was not run
// ends that test's walk: the job after it broke the test.
class BrokenByWalk {
 public:
  BrokenByWalk(const JobInfo& job, const std::vector<TestCase>& cases);
  // Takes the next earlier job; false once every test's walk has ended.
  bool add(const PastRun& run);
  bool done() const;
  // Tests whose walk did not end are failing in every job looked at.
  std::vector<BrokenBy> results() const;

 private:
  struct Walk {
    BrokenBy found;
    bool ended = false;
  };
  std::vector<Walk> walks_;
  size_t steps_ = 0;  // earlier jobs taken, those without cases included
};

// Failures first (failed, error, then skipped, passed), each group by name.
std::vector<TestCase> cases_for_display(std::vector<TestCase> cases);
std::string broken_by_text(const BrokenBy& b);  // "failing since 3f1c2ab by Alice, ..."

std::string show_text(const JobInfo& job, const std::vector<TestCase>& cases,
                      const std::vector<BrokenBy>& broken);
std::string show_json(const JobInfo& job, const std::vector<TestCase>& cases,
                      const std::vector<BrokenBy>& broken);

}  // namespace ci
