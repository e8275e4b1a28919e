#include "runner/job_run.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "ci/validate.h"
#include "process_probe.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

pid_t read_pid(const std::string& path) {
  std::string text = test::read_text(path);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return static_cast<pid_t>(parse_u64(text, INT32_MAX).value_or(0));
}

class JobRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    first_commit = test::make_master_repo(dir / "master");
    test::clone_repo(dir / "master", dir / "clone");
    options.repo = dir / "clone";
    options.work_root = dir / "work";
    std::filesystem::create_directories(options.work_root);
    options.sandbox.enabled = false;  // sandbox_test.cpp runs jobs in the sandbox
    options.timeout = 60s;
    options.kill_grace = 500ms;
  }

  RuntestRequest job(const std::string& commit, JobId id = 1) {
    return RuntestRequest{id, 1, commit, "master"};
  }

  JobRunOutcome run(const std::string& commit) {
    return run_job(options, job(commit), "127.0.0.1:8900", nullptr);
  }

  // Commits an executable file to the master repository.
  std::string commit_executable(const std::string& name, const std::string& content) {
    std::string master = dir / "master";
    std::filesystem::path path = std::filesystem::path(master) / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    std::filesystem::permissions(path, std::filesystem::perms::owner_exec,
                                 std::filesystem::perm_options::add);
    test::git(master, {"add", name});
    test::git(master, {"commit", "-q", "-m", "add " + name});
    return test::head_commit(master);
  }

  TempDir dir;
  std::string first_commit;
  JobRunOptions options;
};

TEST_F(JobRunTest, RunsTheExampleTestsWithUnittestAndCountsThem) {
  auto outcome = run(first_commit);
  const ResultsRequest& r = outcome.results;
  EXPECT_FALSE(outcome.cancelled);
  EXPECT_EQ(r.status, TestStatus::Failed) << r.output;
  EXPECT_EQ(r.tests_run, 2);
  EXPECT_EQ(r.tests_failed, 1);
  EXPECT_EQ(r.job, 1u);
  EXPECT_EQ(r.attempt, 1u);
  EXPECT_EQ(r.runner, "127.0.0.1:8900");
  EXPECT_NE(r.output.find("FAILED (failures=1)"), std::string::npos) << r.output;
}

TEST_F(JobRunTest, RunsAnExecutableCiRunScript) {
  std::string commit = commit_executable(".ci/run", "#!/bin/sh\necho from-ci-run\nexit 0\n");
  auto outcome = run(commit);
  EXPECT_EQ(outcome.results.status, TestStatus::Passed) << outcome.results.output;
  EXPECT_NE(outcome.results.output.find("from-ci-run"), std::string::npos);
  EXPECT_EQ(outcome.results.tests_run, -1);
  EXPECT_EQ(outcome.results.tests_failed, -1);
}

TEST_F(JobRunTest, RunsACiRunScriptWithoutExecuteBitThroughTheShell) {
  std::string commit =
      test::commit_file(dir / "master", ".ci/run", "echo plain-script\nexit 3\n", "ci script");
  auto outcome = run(commit);
  EXPECT_EQ(outcome.results.status, TestStatus::Failed);
  EXPECT_EQ(outcome.results.output, "plain-script\n");
}

TEST_F(JobRunTest, TestCommandOverridesTheRepositorysOwnAndGetsTheJobEnvironment) {
  commit_executable(".ci/run", "#!/bin/sh\necho from-ci-run\n");
  std::string commit = test::head_commit(dir / "master");
  options.test_command = "echo \"$CI $CI_COMMIT $CI_BRANCH $CI_JOB_ID $CI_ATTEMPT\"; pwd";
  auto outcome = run_job(options, RuntestRequest{42, 3, commit, "master"}, "h:1", nullptr);
  std::string workdir = std::filesystem::canonical(dir / "work").string() + "/42-3";
  EXPECT_EQ(outcome.results.status, TestStatus::Passed);
  EXPECT_EQ(outcome.results.output, "true " + commit + " master 42 3\n" + workdir + "\n");
  EXPECT_FALSE(test::file_exists(workdir)) << "the job's checkout is removed after it";
}

TEST_F(JobRunTest, TheTestDoesNotLearnWhereTheTokenIs) {
  ASSERT_EQ(::setenv("CI_TOKEN_FILE", (dir / "token").c_str(), 1), 0);
  options.test_command = "echo \"${CI_TOKEN_FILE-unset}\"";
  auto outcome = run(first_commit);
  ::unsetenv("CI_TOKEN_FILE");
  EXPECT_EQ(outcome.results.output, "unset\n");
}

TEST_F(JobRunTest, EachJobGetsAFreshCheckoutWithNothingAnEarlierJobWrote) {
  std::string commit = test::commit_file(dir / "master", ".gitignore", "*.log\n", "ignore logs");
  options.test_command = "touch untracked.txt build.log && echo planted > tests/test_pass.py";
  ASSERT_EQ(run(commit).results.status, TestStatus::Passed);

  options.test_command =
      "test ! -e untracked.txt && test ! -e build.log && test -e .gitignore && "
      "! grep -q planted tests/test_pass.py && test ! -e .git";
  EXPECT_EQ(run(commit).results.status, TestStatus::Passed);
  EXPECT_TRUE(std::filesystem::is_empty(options.work_root)) << "every checkout is removed";
  EXPECT_EQ(test::git(dir / "clone", {"status", "--porcelain"}), "")
      << "the clone's own work tree is never touched";
}

TEST_F(JobRunTest, ATamperedFileWithTheSameSizeAndTimeDoesNotReachTheNextJob) {
  // The test rewrites a tracked file with content of the same size and puts its
  // modification time back: a checkout that trusted cached stat data would keep it.
  std::string second = test::commit_file(dir / "master", "other.txt", "other\n");
  options.test_command =
      "f=tests/test_pass.py; t=$(stat -c %Y $f); s=$(stat -c %s $f); "
      "head -c $s /dev/zero | tr '\\000' x > $f; touch -d @$t $f";
  ASSERT_EQ(run(first_commit).results.status, TestStatus::Passed);
  options.test_command = "";  // the repository's own tests: unittest of tests/
  auto next = run_job(options, job(second, 2), "h:1", nullptr);
  EXPECT_EQ(next.results.status, TestStatus::Failed) << next.results.output;
  EXPECT_EQ(next.results.tests_run, 2) << next.results.output;
  EXPECT_EQ(next.results.tests_failed, 1) << next.results.output;
}

TEST_F(JobRunTest, FetchesACommitMadeAfterTheClone) {
  std::string commit = test::commit_file(dir / "master", "fresh.txt", "fresh\n");
  options.test_command = "cat fresh.txt";
  auto outcome = run(commit);
  EXPECT_EQ(outcome.results.status, TestStatus::Passed) << outcome.results.output;
  EXPECT_EQ(outcome.results.output, "fresh\n");
  test::run({"git", "-C", dir / "clone", "cat-file", "-e", commit + "^{commit}"});
}

TEST_F(JobRunTest, UnknownCommitIsAnError) {
  std::string missing(40, 'a');
  auto outcome = run(missing);
  EXPECT_EQ(outcome.results.status, TestStatus::Error);
  EXPECT_EQ(outcome.results.output, "commit " + missing + " not found in origin");
  EXPECT_EQ(outcome.results.tests_run, -1);
}

TEST_F(JobRunTest, TimeoutEndsTheCommand) {
  std::string printed = dir / "printed";
  options.test_command = "echo started; touch '" + printed + "'; sleep 30";
  options.timeout = 1s;
  // The timeout runs from the start of the command: on a busy machine it could end it
  // before it has printed. Held back until it has, it ends a command that has.
  auto outcome = run_job(options, job(first_commit), "127.0.0.1:8900", nullptr, [&](pid_t) {
    test::wait_until([&] { return test::file_exists(printed); }, 20s);
  });
  EXPECT_EQ(outcome.results.status, TestStatus::Timeout);
  EXPECT_FALSE(outcome.cancelled);
  EXPECT_EQ(outcome.results.output, "started\n");
  EXPECT_LT(outcome.results.duration_ms, 10000u);
}

TEST_F(JobRunTest, TimeoutKillsTheWholeProcessGroup) {
  std::string pids = dir / "pids";
  options.test_command = "echo $$ > " + pids + ".group; sleep 300 & echo $! > " + pids + "; wait";
  options.timeout = 1s;
  // Held back until the shell has written both ids (the second after the first): on a
  // busy machine the timeout could end the shell before.
  auto outcome = run_job(options, job(first_commit), "127.0.0.1:8900", nullptr,
                         [&](pid_t) { test::wait_until([&] { return read_pid(pids) > 0; }, 20s); });
  EXPECT_EQ(outcome.results.status, TestStatus::Timeout);
  pid_t child = read_pid(pids);
  pid_t group = read_pid(pids + ".group");
  ASSERT_GT(child, 0);
  ASSERT_GT(group, 0);
  EXPECT_TRUE(test::wait_until(
      [&] { return test_probe::process_gone(child) && test_probe::group_gone(group); }, 10s));
}

TEST_F(JobRunTest, NothingOutlivesACommandThatEnds) {
  std::string pid_file = dir / "pid";
  options.test_command = "sleep 300 & echo $! > " + pid_file + "; exit 0";
  auto outcome = run(first_commit);
  EXPECT_EQ(outcome.results.status, TestStatus::Passed);
  pid_t child = read_pid(pid_file);
  ASSERT_GT(child, 0);
  EXPECT_TRUE(test::wait_until([&] { return test_probe::process_gone(child); }, 10s));
}

TEST_F(JobRunTest, CancelledCommandIsMarkedCancelled) {
  CancelToken cancel;
  cancel.cancel();
  options.test_command = "sleep 30";
  auto outcome = run_job(options, job(first_commit), "h:1", &cancel);
  EXPECT_TRUE(outcome.cancelled);
}

TEST_F(JobRunTest, OutputOverTheCapIsCutInTheMiddle) {
  options.test_command = "head -c 100000 /dev/zero | tr '\\000' a; echo; echo the-end";
  options.max_output = 1000;
  auto outcome = run(first_commit);
  EXPECT_EQ(outcome.results.status, TestStatus::Passed);
  EXPECT_LT(outcome.results.output.size(), 1200u);
  EXPECT_NE(outcome.results.output.find("bytes of output cut here"), std::string::npos);
  EXPECT_TRUE(outcome.results.output.ends_with("the-end\n"));
}

TEST_F(JobRunTest, TestsGetTheDefaultSigpipeEvenWhenTheRunnerIgnoresIt) {
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &previous), 0);
  options.test_command = "kill -PIPE $$; echo survived";
  auto outcome = run(first_commit);
  ::sigaction(SIGPIPE, &previous, nullptr);
  EXPECT_EQ(outcome.results.status, TestStatus::Failed);
  EXPECT_EQ(outcome.results.output, "");
}

TEST_F(JobRunTest, TheCloneStaysOpenFromOneJobToTheNext) {
  Clone clone(dir / "clone");
  options.test_command = "cat fresh.txt";
  for (int i = 0; i < 3; ++i) {
    std::string content = "fresh " + std::to_string(i) + "\n";
    std::string commit = test::commit_file(dir / "master", "fresh.txt", content);
    auto outcome = run_job(clone, options, job(commit, i + 1), "h:1", nullptr);
    EXPECT_EQ(outcome.results.status, TestStatus::Passed) << outcome.results.output;
    EXPECT_EQ(outcome.results.output, content);
  }
  EXPECT_EQ(clone.opens(), 1u);
}

TEST_F(JobRunTest, AfterAGitErrorTheCloneIsOpenedAnew) {
  Clone clone(dir / "clone");
  options.test_command = "true";
  EXPECT_EQ(run_job(clone, options, job(first_commit), "h:1", nullptr).results.status,
            TestStatus::Passed);
  std::string missing(40, 'b');
  auto failed = run_job(clone, options, job(missing, 2), "h:1", nullptr);
  EXPECT_EQ(failed.results.status, TestStatus::Error);
  EXPECT_EQ(failed.results.output, "commit " + missing + " not found in origin");
  EXPECT_EQ(clone.opens(), 1u) << "origin lacking the commit is no reason to try again";
  EXPECT_EQ(run_job(clone, options, job(first_commit, 3), "h:1", nullptr).results.status,
            TestStatus::Passed);
  EXPECT_EQ(clone.opens(), 2u);
}

TEST_F(JobRunTest, TheCloneIsOpenedAnewAfterItsReuseLimit) {
  Clone clone(dir / "clone", 2);
  options.test_command = "true";
  for (JobId id = 1; id <= 5; ++id) {
    EXPECT_EQ(run_job(clone, options, job(first_commit, id), "h:1", nullptr).results.status,
              TestStatus::Passed);
  }
  EXPECT_EQ(clone.opens(), 3u);
}

TEST_F(JobRunTest, ARepackOfTheCloneBetweenJobsLeavesTheNextJobWorking) {
  // The objects and refs the clone's handle knows of move into a new pack and packed-refs.
  Clone clone(dir / "clone");
  std::string second = test::commit_file(dir / "master", "second.txt", "second\n");
  options.test_command = "true";
  ASSERT_EQ(run_job(clone, options, job(second), "h:1", nullptr).results.status,
            TestStatus::Passed);
  test::git(dir / "clone", {"repack", "-a", "-d", "-q"});
  test::git(dir / "clone", {"pack-refs", "--all"});

  std::string third = test::commit_file(dir / "master", "third.txt", "third\n");
  options.test_command = "cat second.txt third.txt";
  auto next = run_job(clone, options, job(third, 2), "h:1", nullptr);
  EXPECT_EQ(next.results.status, TestStatus::Passed) << next.results.output;
  EXPECT_EQ(next.results.output, "second\nthird\n");
  auto back = run_job(clone, options, job(first_commit, 3), "h:1", nullptr);
  EXPECT_EQ(back.results.status, TestStatus::Failed) << "second.txt is not in the first commit";
  EXPECT_EQ(clone.opens(), 1u) << "the handle read the new pack and packed-refs by itself";
}

TEST_F(JobRunTest, WhenTheOpenCloneFailsTheJobIsTriedWithTheCloneOpenedAnew) {
  // The git folder moves elsewhere and .git becomes a link to it, as `git submodule
  // absorbgitdirs` does: the handle kept open still looks in the old place.
  Clone clone(dir / "clone");
  options.test_command = "true";
  ASSERT_EQ(run_job(clone, options, job(first_commit), "h:1", nullptr).results.status,
            TestStatus::Passed);
  std::filesystem::rename(dir / "clone/.git", dir / "moved.git");
  std::ofstream(dir / "clone/.git") << "gitdir: ../moved.git\n";

  std::string fresh = test::commit_file(dir / "master", "fresh.txt", "fresh\n");
  options.test_command = "cat fresh.txt";
  auto next = run_job(clone, options, job(fresh, 2), "h:1", nullptr);
  EXPECT_EQ(next.results.status, TestStatus::Passed) << next.results.output;
  EXPECT_EQ(next.results.output, "fresh\n");
  EXPECT_EQ(clone.opens(), 2u);
}

TEST(TestArgv, PicksTheTestCommandThenCiRunThenUnittest) {
  TempDir dir;
  JobRunOptions options;
  EXPECT_EQ(
      test_argv(options, dir.path()),
      (std::vector<std::string>{"python3", "-m", "unittest", "discover", "-s", "tests", "-v"}));
  std::filesystem::create_directories(dir / ".ci");
  std::ofstream(dir / ".ci/run") << "echo hi\n";
  EXPECT_EQ(test_argv(options, dir.path() + "/"), (std::vector<std::string>{"/bin/sh", ".ci/run"}));
  ::chmod((dir / ".ci/run").c_str(), 0755);
  EXPECT_EQ(test_argv(options, dir.path() + "/"), (std::vector<std::string>{dir / ".ci/run"}));
  options.test_command = "make check";
  EXPECT_EQ(test_argv(options, dir.path()),
            (std::vector<std::string>{"/bin/sh", "-c", "make check"}));
}

}  // namespace
}  // namespace ci::runner

namespace ci::runner {
namespace {

TEST(JobEnvironment, OnlyTheDocumentedVariablesAndThosePassed) {
  ::setenv("CI_TEST_SECRET_KEY", "hunter2", 1);
  ::setenv("SOME_TOOL_HOME", "/opt/tool", 1);
  ::setenv("PASSED_ALONG", "yes", 1);
  RuntestRequest job{7, 2, std::string(40, 'a'), "feature/x"};
  auto env = job_environment(job, {"PASSED_ALONG", "NOT_SET_ANYWHERE"});
  ::unsetenv("CI_TEST_SECRET_KEY");
  ::unsetenv("SOME_TOOL_HOME");
  ::unsetenv("PASSED_ALONG");
  auto has = [&](const std::string& entry) {
    return std::find(env.begin(), env.end(), entry) != env.end();
  };
  auto has_name = [&](const std::string& name) {
    return std::any_of(env.begin(), env.end(),
                       [&](const std::string& e) { return e.rfind(name + "=", 0) == 0; });
  };
  EXPECT_TRUE(has("CI=true"));
  EXPECT_TRUE(has("CI_COMMIT=" + std::string(40, 'a')));
  EXPECT_TRUE(has("CI_BRANCH=feature/x"));
  EXPECT_TRUE(has("CI_JOB_ID=7"));
  EXPECT_TRUE(has("CI_ATTEMPT=2"));
  EXPECT_TRUE(has("PASSED_ALONG=yes"));
  EXPECT_TRUE(has_name("PATH"));
  EXPECT_FALSE(has_name("SOME_TOOL_HOME"));
  EXPECT_FALSE(has_name("CI_TEST_SECRET_KEY"));
  EXPECT_FALSE(has_name("NOT_SET_ANYWHERE"));
  EXPECT_FALSE(has_name("CI_TOKEN_FILE"));
}

}  // namespace
}  // namespace ci::runner
