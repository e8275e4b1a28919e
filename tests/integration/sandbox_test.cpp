// A repository's tests are code the CI did not write. Each test here is an attack, a
// commit whose .ci/run does what a hostile test would, against the real dispatcher and
// runner with the sandbox on (the default): what it tries must not work, and what the
// CI reports afterwards must still be true.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cluster.h"

namespace ci::test {
namespace {

namespace fs = std::filesystem;

// A token file as a user makes it: 32 random bytes, base64, readable by its owner only.
std::string make_token(const std::string& path) {
  run({"sh", "-c", "head -c 32 /dev/urandom | base64 > '" + path + "'"});
  ::chmod(path.c_str(), 0600);
  std::string token = read_text(path);
  while (!token.empty() && token.back() == '\n') token.pop_back();
  return token;
}

// Commits `script` as the executable .ci/run of `repo`.
std::string commit_ci_run(const std::string& repo, const std::string& script,
                          const std::string& message = "add .ci/run") {
  fs::create_directories(fs::path(repo) / ".ci");
  std::string path = repo + "/.ci/run";
  std::ofstream(path, std::ios::binary) << script;
  ::chmod(path.c_str(), 0755);
  git(repo, {"add", ".ci/run"});
  git(repo, {"commit", "-q", "-m", message});
  return head_commit(repo);
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    make_master_repo(c.master());
    token = make_token(token_file);
    c.start_dispatcher({"--token-file", token_file});
  }

  void dispatch(const std::string& commit, const std::string& branch) {
    run({bin("cictl"), "--dispatcher-server", c.server(), "--token-file", token_file, "dispatch",
         commit, "--branch", branch});
  }

  // Dispatches `commit` and returns its result file once written.
  std::string result_of(const std::string& commit, const std::string& branch = "master") {
    dispatch(commit, branch);
    EXPECT_TRUE(c.wait_result(commit)) << c.dispatcher().log() << c.runner(0).log();
    return c.result(commit);
  }

  Cluster c;
  std::string token_file = c.path("token");
  std::string token;
};

TEST_F(SandboxTest, ATestCannotReadTheTokenNorFindTheRunner) {
  c.start_runner({"--token-file", token_file});
  // What worked before: find --token-file in a process's command line, read the file.
  std::string commit = commit_ci_run(
      c.master(), R"SH(#!/bin/sh
echo "uid $(id -u)"
for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f"; echo; done > /tmp/cmdlines
grep -c '^[^ ]*/ci-runner ' /tmp/cmdlines | sed 's/^/runner processes seen: /'
for path in ')SH" + token_file +
                      R"SH(' $(grep -o -- '--token-file [^ ]*' /tmp/cmdlines | cut -d' ' -f2); do
  cat "$path" 2>/dev/null | sed 's/^/read: /'
done
env | sed 's/^/env: /'
exit 0
)SH");
  std::string result = result_of(commit);
  EXPECT_EQ(header_field(result, "status"), "passed") << result;
  EXPECT_EQ(result.find(token), std::string::npos) << result;
  EXPECT_EQ(result.find("read: "), std::string::npos) << result;
  EXPECT_NE(result.find("runner processes seen: 0"), std::string::npos) << result;
  if (::geteuid() == 0) {
    EXPECT_EQ(result.find("uid 0\n"), std::string::npos) << "a root runner's test is not root";
  }
  EXPECT_FALSE(c.runner(0).log_contains(token));
  EXPECT_FALSE(c.dispatcher().log_contains(token));
}

TEST_F(SandboxTest, AProcessThatLeftTheTestsSessionIsGoneWhenTheJobEnds) {
  c.start_runner({"--token-file", token_file});
  // A marker in the command line, to find the process from outside the sandbox.
  std::string marker = "3600.0" + std::to_string(::getpid()) + "1";
  std::string commit = commit_ci_run(c.master(), "#!/bin/sh\nsetsid sleep " + marker +
                                                     " >/dev/null 2>&1 &\n"
                                                     "while ! pgrep -f '^sleep " +
                                                     marker +
                                                     "' >/dev/null; do :; done\n"
                                                     "echo started\n");
  auto marked_alive = [&] {
    return run({"sh", "-c", "pgrep -f '^sleep " + marker + "' || true"}) != "";
  };
  std::string result = result_of(commit);
  EXPECT_EQ(header_field(result, "status"), "passed") << result;
  EXPECT_NE(result.find("started"), std::string::npos) << result;
  EXPECT_TRUE(wait_until([&] { return !marked_alive(); }, 10000ms))
      << "the setsid process outlived its job";
}

TEST_F(SandboxTest, WithTheSandboxOffTheJobsCgroupStillEndsWhatTheTestLeftRunning) {
  // Root can make cgroups wherever a cgroup v2 hierarchy is mounted.
  if (::geteuid() != 0 ||
      read_text("/proc/self/mountinfo").find(" - cgroup2 ") == std::string::npos)
    GTEST_SKIP() << "the runner cannot make cgroups here";
  Daemon& runner =
      c.start_runner({"--token-file", token_file, "--sandbox", "off", "--job-cgroup", "on"});
  ASSERT_TRUE(runner.log_contains("each job runs in a cgroup of its own")) << runner.log();
  std::string marker = "3600.0" + std::to_string(::getpid()) + "2";
  std::string commit = commit_ci_run(c.master(), "#!/bin/sh\nsetsid sleep " + marker +
                                                     " >/dev/null 2>&1 &\n"
                                                     "while ! pgrep -f '^sleep " +
                                                     marker + "' >/dev/null; do :; done\n");
  std::string result = result_of(commit);
  EXPECT_EQ(header_field(result, "status"), "passed") << result;
  EXPECT_TRUE(wait_until(
      [&] {
        return run({"sh", "-c", "pgrep -f '^sleep " + marker + "' || true"}).empty();
      },
      10000ms))
      << "the setsid process outlived its job";
}

TEST_F(SandboxTest, ATamperedFileWithTheSameSizeAndTimeDoesNotReachTheNextJob) {
  c.start_runner({"--token-file", token_file});
  // On a feature branch: a .ci/run that rewrites the failing example test so that it
  // passes, with the same size, and puts its modification time back.
  git(c.master(), {"checkout", "-q", "-b", "feature"});
  std::string attack = commit_ci_run(c.master(), R"SH(#!/bin/sh
f=tests/test_fail.py
size=$(stat -c %s $f); time=$(stat -c %Y $f)
printf 'import unittest\nclass TestFails(unittest.TestCase):\n    def test_subtraction(self):\n        pass\n' > /tmp/planted
head -c $((size - $(stat -c %s /tmp/planted))) /dev/zero | tr '\000' '#' >> /tmp/planted
cat /tmp/planted > $f && touch -d @$time $f && echo planted
)SH");
  git(c.master(), {"checkout", "-q", "master"});
  std::string next = commit_file(c.master(), "README", "on master\n");

  std::string planted = result_of(attack, "feature");
  ASSERT_NE(planted.find("planted"), std::string::npos) << planted;
  std::string honest = result_of(next);
  EXPECT_EQ(header_field(honest, "status"), "failed") << honest;
  EXPECT_EQ(header_field(honest, "tests-run"), "2") << honest;
  EXPECT_EQ(header_field(honest, "tests-failed"), "1") << honest;
  EXPECT_EQ(header_field(honest, "runner"), header_field(planted, "runner"));
}

TEST_F(SandboxTest, NothingOfTheRunnersOwnCanBeReadOrTouchedFromATest) {
  std::string state = c.path("runner-state");
  c.start_runner({"--token-file", token_file, "--state-dir", state});
  std::string clone = c.path("runner1");
  std::ofstream(state + "/sentinel") << "kept\n";
  std::string config = read_text(clone + "/.git/config");
  std::string commit = commit_ci_run(c.master(), R"SH(#!/bin/sh
for dir in ')SH" + state + "' '" + state + "/spool' '" +
                                                     clone + "' '" + clone + R"SH(/.git'; do
  ls -A "$dir" 2>&1 | sed "s|^|in $dir: |"
done
rm -f ')SH" + state + R"SH(/sentinel' 2>/dev/null
echo planted > ')SH" + state + R"SH(/spool/9-1.result' 2>/dev/null && echo wrote-spool
echo '[core]' > ')SH" + clone + R"SH(/.git/config' 2>/dev/null && echo wrote-config
exit 0
)SH");
  std::string result = result_of(commit);
  EXPECT_EQ(header_field(result, "status"), "passed") << result;
  EXPECT_EQ(result.find("in " + state + ": sentinel"), std::string::npos) << result;
  EXPECT_EQ(result.find("in " + clone + ": tests"), std::string::npos) << result;
  EXPECT_EQ(result.find("in " + clone + "/.git: config"), std::string::npos) << result;
  EXPECT_EQ(result.find("wrote-"), std::string::npos) << result;
  EXPECT_EQ(read_text(state + "/sentinel"), "kept\n");
  EXPECT_FALSE(file_exists(state + "/spool/9-1.result"));
  EXPECT_EQ(read_text(clone + "/.git/config"), config);
}

TEST_F(SandboxTest, WithoutNetworkATestHasOnlyItsOwnLoopback) {
  c.start_runner({"--token-file", token_file, "--test-network", "none"});
  // /dev/tcp is bash's.
  if (!file_exists("/bin/bash")) GTEST_SKIP() << "no bash";
  // The dispatcher listens on the machine's loopback, which this test must not reach.
  std::string commit = commit_ci_run(c.master(),
                                     "#!/bin/bash\n"
                                     "if (exec 3<>/dev/tcp/127.0.0.1/" +
                                         std::to_string(c.port()) +
                                         ") 2>/dev/null; then echo reached; "
                                         "else echo unreachable; fi\n");
  std::string result = result_of(commit);
  EXPECT_NE(result.find("unreachable"), std::string::npos) << result;
}

TEST_F(SandboxTest, ARunnerThatIsNotRootRunsTestsInTheSandboxToo) {
  if (::geteuid() != 0) {
    // Every other test here already runs the runner as this (non-root) user.
    GTEST_SKIP() << "covered by the other tests when not run as root";
  }
  // A runner as nobody: its clone and state folder are its own; the cluster's folder is
  // open to it for reading.
  ::chmod(c.path("").c_str(), 0755);
  ::chmod(token_file.c_str(), 0600);
  std::string home = c.path("nobody");
  fs::create_directories(home);
  std::string clone = clone_repo(c.master(), home + "/clone");
  std::string token_copy = home + "/token";
  fs::copy_file(token_file, token_copy);
  // The master belongs to root: git (libgit2 too) reads another user's repository only
  // when told that it is safe, as a user of such a runner would tell it.
  std::ofstream(home + "/.gitconfig") << "[safe]\n\tdirectory = " << c.master() << "\n";
  run({"chown", "-R", "65534:65534", home});
  Daemon runner(
      "ci-runner",
      {"--port", "0", "--dispatcher-server", c.server(), "--token-file", token_copy,
       "--test-command", "id -u; touch /etc/planted 2>/dev/null || echo read-only", clone},
      c.path("nobody-runner.log"), "",
      {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "env", "HOME=" + home});
  ASSERT_NE(runner.wait_listening(), 0) << runner.log();
  std::string commit = commit_file(c.master(), "file", "x\n");
  dispatch(commit, "master");
  ASSERT_TRUE(c.wait_result(commit)) << runner.log();
  std::string result = c.result(commit);
  EXPECT_EQ(header_field(result, "status"), "passed") << result;
  EXPECT_NE(result.find("65534\n"), std::string::npos) << result;
  EXPECT_NE(result.find("read-only"), std::string::npos) << result;
  EXPECT_TRUE(runner.log_contains("tests run in a sandbox")) << runner.log();
}

}  // namespace
}  // namespace ci::test
