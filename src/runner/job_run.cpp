#include "runner/job_run.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "runner/test_reports.h"
#include "runner/unittest_summary.h"

namespace ci::runner {
namespace {

uint64_t elapsed_ms(const Clock& clock, TimePoint since) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - since).count());
}

}  // namespace

const char* const kBaseEnvironment[] = {"PATH",   "HOME", "USER",   "LOGNAME", "LANG",
                                        "LC_ALL", "TZ",   "TMPDIR", nullptr};

// A clean environment: a test sees what the runner documents and nothing else, so no
// secret of the runner's (its token file, credentials in its environment) leaks in.
std::vector<std::string> job_environment(const RuntestRequest& job,
                                         const std::vector<std::string>& pass_env,
                                         const std::string& reports_dir) {
  std::vector<std::string> names;
  for (const char* const* n = kBaseEnvironment; *n; ++n) names.emplace_back(*n);
  names.insert(names.end(), pass_env.begin(), pass_env.end());
  std::vector<std::string> env;
  bool has_path = false;
  for (const auto& name : names) {
    // The CI_ variables are the runner's to set, and CI_TOKEN_FILE never goes in.
    if (name == "CI" || name.rfind("CI_", 0) == 0) continue;
    const char* value = std::getenv(name.c_str());
    if (!value) continue;
    has_path = has_path || name == "PATH";
    env.push_back(name + "=" + value);
  }
  if (!has_path) env.push_back("PATH=/usr/local/bin:/usr/bin:/bin");
  env.push_back("CI=true");
  env.push_back("CI_COMMIT=" + job.commit);
  env.push_back("CI_BRANCH=" + job.branch);
  env.push_back("CI_JOB_ID=" + std::to_string(job.job));
  env.push_back("CI_ATTEMPT=" + std::to_string(job.attempt));
  if (!reports_dir.empty()) env.push_back("CI_REPORTS_DIR=" + reports_dir);
  return env;
}

std::vector<std::string> test_argv(const JobRunOptions& options, const std::string& workdir) {
  if (!options.test_command.empty()) return {"/bin/sh", "-c", options.test_command};
  std::string script = workdir;
  if (!script.empty() && script.back() != '/') script += '/';
  script += ".ci/run";
  struct stat st {};
  if (::stat(script.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    if (::access(script.c_str(), X_OK) == 0) return {script};
    return {"/bin/sh", ".ci/run"};
  }
  return {"python3", "-m", "unittest", "discover", "-s", "tests", "-v"};
}

Clone::Clone(std::string path, unsigned reuse_limit)
    : path_(std::move(path)), reuse_limit_(std::max(reuse_limit, 1u)) {}

Result<void> Clone::export_to(const std::string& commit, const std::string& dir) {
  bool reused = repo_.has_value();
  if (reused && uses_ >= reuse_limit_) {
    repo_.reset();
    reused = false;
  }
  auto done = try_export(commit, dir);
  if (done) return done;
  repo_.reset();
  // A commit that origin does not have either is not the handle's fault.
  if (!reused || missing_) return done;
  spdlog::debug("exporting {} failed ({}); again with the repository opened anew", commit,
                done.error());
  if (auto cleared = remove_tree(dir); !cleared) return cleared;
  if (::mkdir(dir.c_str(), 0700) != 0)
    return make_error("cannot make " + dir + ": " + std::strerror(errno));
  done = try_export(commit, dir);
  if (!done) repo_.reset();
  return done;
}

Result<void> Clone::try_export(const std::string& commit, const std::string& dir) {
  if (!repo_) {
    auto opened = git::Repository::open(path_);
    if (!opened) return Error{opened.error()};
    repo_.emplace(std::move(opened.value()));
    uses_ = 0;
    ++opens_;
  }
  ++uses_;
  missing_ = false;
  git::Repository& repo = *repo_;
  if (!repo.has_commit(commit)) {
    spdlog::debug("commit {} not in the clone, fetching origin", commit);
    if (auto fetched = repo.fetch("origin"); !fetched)
      return make_error("commit " + commit + " not found and " + fetched.error());
    if (!repo.has_commit(commit)) {
      missing_ = true;
      return make_error("commit " + commit + " not found in origin");
    }
  }
  return repo.export_commit(commit, dir);
}

std::string job_workdir(const JobRunOptions& options, const RuntestRequest& job) {
  return (std::filesystem::path(options.work_root) /
          (std::to_string(job.job) + "-" + std::to_string(job.attempt)))
      .string();
}

std::string job_reports_dir(const JobRunOptions& options, const RuntestRequest& job) {
  return job_workdir(options, job) + ".reports";
}

namespace {

// Removes a job's checkout (or reports folder) when the job is over, however it ends.
class Workdir {
 public:
  explicit Workdir(std::string path) : path_(std::move(path)) {}
  ~Workdir() {
    if (auto removed = remove_tree(path_); !removed) spdlog::warn("{}", removed.error());
  }
  Workdir(const Workdir&) = delete;
  Workdir& operator=(const Workdir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A new, empty folder for the job's checkout, with the commit's files in it.
Result<void> prepare_workdir(const Exporter& export_commit, const JobRunOptions& options,
                             const std::string& commit, const std::string& dir) {
  // Left by a runner killed during this very job: nothing in it is to be trusted.
  if (auto cleared = remove_tree(dir); !cleared) return cleared;
  if (::mkdir(dir.c_str(), 0700) != 0)
    return make_error("cannot make the job's folder " + dir + ": " + std::strerror(errno));
  if (auto exported = export_commit(commit, dir); !exported) return exported;
  if (options.user.set) return chown_tree(dir, options.user.uid, options.user.gid);
  return {};
}

// A new, empty folder the test (or its user) may write its reports to.
Result<void> prepare_reports_dir(const JobRunOptions& options, const std::string& dir) {
  if (auto cleared = remove_tree(dir); !cleared) return cleared;
  if (::mkdir(dir.c_str(), 0700) != 0)
    return make_error("cannot make the job's reports folder " + dir + ": " + std::strerror(errno));
  if (options.user.set && ::chown(dir.c_str(), options.user.uid, options.user.gid) != 0)
    return make_error("cannot give " + dir + " to the test user: " + std::strerror(errno));
  return {};
}

// The test cases of the run into results->cases, and the line that says where they
// came from (and the notes on skipped reports) after the output, and to `on_output`;
// counts still unknown are taken from the cases.
void attach_cases(const std::string& reports_dir, ResultsRequest* results,
                  const OutputHook& on_output) {
  ReportCases read = read_junit_dir(reports_dir);
  std::string source = std::to_string(read.files) + " JUnit report" + (read.files == 1 ? "" : "s") +
                       " in CI_REPORTS_DIR";
  if (read.cases.empty() && read.dropped == 0) {
    ReportCases from_output = read_unittest_output(results->output);
    if (!from_output.cases.empty()) {
      from_output.notes.insert(from_output.notes.begin(), read.notes.begin(), read.notes.end());
      read = std::move(from_output);
      source = "the unittest output";
    }
  }
  // Without unittest's summary (a test that writes JUnit reports only, or a run cut
  // short) the counts come from the cases, counted as that summary counts: every case
  // run, skipped ones too, as "Ran N tests" and JUnit's tests="N" count them; failed
  // ones and those in error failed.
  if (results->tests_run < 0 && (!read.cases.empty() || read.dropped > 0)) {
    results->tests_run = static_cast<int64_t>(read.cases.size() + read.dropped);
    results->tests_failed = static_cast<int64_t>(read.failed);
  }
  std::string lines;
  for (const auto& note : read.notes) lines += "[ci] " + note + "\n";
  size_t dropped = 0;
  results->cases = serialize_cases(read.cases, &dropped);
  if (!read.cases.empty()) {
    lines +=
        "[ci] " + std::to_string(read.cases.size() - dropped) + " test cases read from " + source;
    if (dropped > 0) lines += " (" + std::to_string(dropped) + " more left out: too large)";
    lines += "\n";
  }
  if (lines.empty()) return;
  if (!results->output.empty() && results->output.back() != '\n') lines.insert(0, "\n");
  results->output += lines;
  if (on_output) on_output(lines);
}

}  // namespace

JobRunOutcome run_job(const JobRunOptions& options, const RuntestRequest& job,
                      const std::string& runner, const CancelToken* cancel,
                      const std::function<void(pid_t group)>& on_started,
                      const OutputHook& on_output) {
  Clone clone(options.repo);
  return run_job(clone, options, job, runner, cancel, on_started, on_output);
}

JobRunOutcome run_job(Clone& clone, const JobRunOptions& options, const RuntestRequest& job,
                      const std::string& runner, const CancelToken* cancel,
                      const std::function<void(pid_t group)>& on_started,
                      const OutputHook& on_output) {
  Exporter export_commit = [&clone](const std::string& commit, const std::string& dir) {
    return clone.export_to(commit, dir);
  };
  return run_job(export_commit, options, job, runner, cancel, on_started, on_output);
}

JobRunOutcome run_job(const Exporter& export_commit, const JobRunOptions& options,
                      const RuntestRequest& job, const std::string& runner,
                      const CancelToken* cancel, const std::function<void(pid_t group)>& on_started,
                      const OutputHook& on_output) {
  const Clock& clock = options.clock ? *options.clock : Clock::real();
  const TimePoint start = clock.now();
  JobRunOutcome outcome;
  ResultsRequest& results = outcome.results;
  results.job = job.job;
  results.attempt = job.attempt;
  results.runner = runner;
  results.status = TestStatus::Error;

  Workdir workdir(job_workdir(options, job));
  if (auto prepared = prepare_workdir(export_commit, options, job.commit, workdir.path());
      !prepared) {
    // Stopped while it waited to try a fetch again: nothing is known of the commit.
    outcome.cancelled = cancel && cancel->cancelled();
    results.output = prepared.error();
    results.duration_ms = elapsed_ms(clock, start);
    return outcome;
  }
  Workdir reports(job_reports_dir(options, job));
  if (auto prepared = prepare_reports_dir(options, reports.path()); !prepared) {
    results.output = prepared.error();
    results.duration_ms = elapsed_ms(clock, start);
    return outcome;
  }

  CommandSpec spec;
  spec.argv = test_argv(options, workdir.path());
  if (options.sandbox.enabled) {
    spec.argv = options.box
                    ? options.box->command(workdir.path(), spec.argv, {reports.path()})
                    : Sandbox(options.sandbox).command(workdir.path(), spec.argv, {reports.path()});
  }
  spec.cwd = workdir.path();
  spec.env = job_environment(job, options.pass_env, reports.path());
  run_as(options.user, &spec);
  if (options.user.set) {
    for (auto& var : spec.env) {
      if (var.rfind("USER=", 0) == 0) var = "USER=" + options.user.name;
      if (var.rfind("LOGNAME=", 0) == 0) var = "LOGNAME=" + options.user.name;
      // In the sandbox the runner's home is an empty folder the test may write to.
      if (!options.sandbox.enabled && var.rfind("HOME=", 0) == 0) var = "HOME=" + options.user.home;
    }
  }
  spec.timeout = options.timeout;
  spec.output_cap = options.max_output;
  spec.kill_grace = options.kill_grace;
  spec.guard = true;
  spec.on_started = on_started;
  spec.on_output = on_output;
  std::string cgroup;
  if (options.cgroups) {
    auto made =
        options.cgroups->make("job-" + std::to_string(job.job) + "-" + std::to_string(job.attempt));
    if (!made) {
      results.output = "cannot make the job's cgroup: " + made.error();
      results.duration_ms = elapsed_ms(clock, start);
      return outcome;
    }
    cgroup = *made;
    spec.cgroup = cgroup;
  }
  auto ran = run_command(spec, cancel);
  if (!cgroup.empty()) {
    // Whatever the test left running is killed, and the result waits until it is gone.
    if (auto emptied = JobCgroups::kill_and_remove(cgroup, std::chrono::seconds(10)); !emptied) {
      spdlog::error("job {} attempt {}: {}", job.job, job.attempt, emptied.error());
      results.output = "the test's processes could not all be ended: " + emptied.error();
      results.duration_ms = elapsed_ms(clock, start);
      outcome.cancelled = ran && ran->cancelled;
      return outcome;
    }
  }
  if (!ran) {
    results.output = "cannot run the test command: " + ran.error();
    results.duration_ms = elapsed_ms(clock, start);
    return outcome;
  }
  outcome.cancelled = ran->cancelled;
  if (ran->timed_out) {
    results.status = TestStatus::Timeout;
  } else if (ran->exit_code == 0) {
    results.status = TestStatus::Passed;
  } else {
    results.status = TestStatus::Failed;
  }
  TestCounts counts = parse_unittest_summary(ran->output);
  results.tests_run = counts.run;
  results.tests_failed = counts.failed;
  results.duration_ms = static_cast<uint64_t>(ran->duration.count());
  results.output = std::move(ran->output);
  attach_cases(reports.path(), &results, on_output);
  return outcome;
}

}  // namespace ci::runner
