// One test job: bring the commit into the runner's clone, export its tree into a new
// folder of its own, run the repository's tests there (in the sandbox, see sandbox.h),
// remove the folder and turn what happened into a results message.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ci/clock.h"
#include "ci/git.h"
#include "ci/process.h"
#include "ci/protocol.h"
#include "runner/cgroup.h"
#include "runner/sandbox.h"

namespace ci::runner {

struct JobRunOptions {
  std::string repo;  // the runner's clone, with a remote "origin"
  // Each job's checkout is made in a new folder here, <job>-<attempt>, and removed
  // after the job. Nothing else may be in it.
  std::string work_root;
  std::string test_command;  // run with /bin/sh -c; "" for the repository's own
  std::chrono::milliseconds timeout{std::chrono::seconds(1800)};
  size_t max_output = 4u << 20;
  std::chrono::milliseconds kill_grace{2000};  // SIGTERM, then SIGKILL, at a timeout
  std::vector<std::string> pass_env;           // names of the runner's variables the test also gets
  SandboxOptions sandbox;
  // The sandbox made from `sandbox` when it is on (by the runner's start); made for each
  // job when missing.
  std::optional<Sandbox> box;
  TestUser user;  // set when the runner runs as root
  // Where each job gets a cgroup of its own; none where the machine does not let the
  // runner make one.
  std::optional<JobCgroups> cgroups;
  // A cgroup (v2) folder made for each job under this one; "" for none (cgroup.h).
  std::string cgroup_root;
  // Measures a job that ends before its command runs (the runner's; see runner.h). The
  // command's own duration and timeout are on real time (ci/process.h).
  Clock* clock = &Clock::real();
};

// The variables a test gets from the runner's environment besides those pass_env names.
extern const char* const kBaseEnvironment[];

// The test's whole environment: kBaseEnvironment and pass_env taken from the runner's
// (when set there), then CI=true, CI_COMMIT, CI_BRANCH, CI_JOB_ID, CI_ATTEMPT and, when
// given, CI_REPORTS_DIR.
std::vector<std::string> job_environment(const RuntestRequest& job,
                                         const std::vector<std::string>& pass_env,
                                         const std::string& reports_dir = "");

struct JobRunOutcome {
  ResultsRequest results;
  // The runner stopped the command: the outcome says nothing about the commit and
  // must not be reported as its result.
  bool cancelled = false;
};

// The command for the checked-out work tree at `workdir`: the test command if given,
// else the repository's .ci/run, else Python unittest discovery of tests/.
std::vector<std::string> test_argv(const JobRunOptions& options, const std::string& workdir);

// The runner's clone, kept open from one job to the next: opening it costs more than a
// trivial test. It is an object store only: a job's files are exported from it into a
// folder of the job's own, never checked out in the clone's work tree. After any git
// error the clone is opened anew, and the export is tried once more at once if the
// error came from a handle that earlier jobs had used (unless origin lacks the commit).
// It is also opened anew every `reuse_limit` jobs: libgit2's object cache grows with
// every commit read. Used by one thread at a time.
class Clone {
 public:
  explicit Clone(std::string path, unsigned reuse_limit = 100);
  // Brings the commit into the clone (fetching origin if it is missing) and writes its
  // tree into `dir`.
  Result<void> export_to(const std::string& commit, const std::string& dir);
  const std::string& path() const { return path_; }
  // How many times the repository was opened.
  unsigned opens() const { return opens_; }

 private:
  Result<void> try_export(const std::string& commit, const std::string& dir);

  std::string path_;
  unsigned reuse_limit_;
  std::optional<git::Repository> repo_;
  unsigned uses_ = 0;     // jobs exported with repo_
  bool missing_ = false;  // the last try fetched and origin has no such commit
  unsigned opens_ = 0;
};

// The folder of a job's checkout under options.work_root.
std::string job_workdir(const JobRunOptions& options, const RuntestRequest& job);
// The job's empty folder for the test's JUnit XML reports (CI_REPORTS_DIR), beside its
// checkout: <job>-<attempt>.reports. Writable by the test, removed after the job.
std::string job_reports_dir(const JobRunOptions& options, const RuntestRequest& job);

// Called with each piece of the test's output as it is printed (the live log), and
// with the runner's own lines about it (where the test cases came from).
using OutputHook = std::function<void(std::string_view chunk)>;

// Runs the job to its end on the calling thread, in `clone` (options.repo's). `runner`
// is the runner's host:port for the results message; `cancel` stops a running command.
// The command runs under a guard (see CommandSpec::guard): nothing of it outlives the
// runner. `on_started` gets the id of its process group once it exists. Once the
// command has ended, the test cases are read from the JUnit reports it left, or else
// from unittest's verbose lines in its output, into results.cases; a line at the end of
// the output says how many and from where, and why a report was skipped.
JobRunOutcome run_job(Clone& clone, const JobRunOptions& options, const RuntestRequest& job,
                      const std::string& runner, const CancelToken* cancel,
                      const std::function<void(pid_t group)>& on_started = nullptr,
                      const OutputHook& on_output = nullptr);
// Writes the tree of a commit into a new, empty folder: where a job's files come from.
using Exporter = std::function<Result<void>(const std::string& commit, const std::string& dir)>;
// The same with the job's files from `export_commit` (a repository the runner
// provisioned, a clone shared by several slots).
JobRunOutcome run_job(const Exporter& export_commit, const JobRunOptions& options,
                      const RuntestRequest& job, const std::string& runner,
                      const CancelToken* cancel,
                      const std::function<void(pid_t group)>& on_started = nullptr,
                      const OutputHook& on_output = nullptr);
// The same in options.repo, opened for this job only.
JobRunOutcome run_job(const JobRunOptions& options, const RuntestRequest& job,
                      const std::string& runner, const CancelToken* cancel,
                      const std::function<void(pid_t group)>& on_started = nullptr,
                      const OutputHook& on_output = nullptr);

}  // namespace ci::runner
