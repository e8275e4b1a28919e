// The ci-runner executable as a process: what its test leaves when it is killed, and
// how it stops on SIGTERM. These tests need the executable next to the test binary
// (the ci-runner target built) and are skipped without it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fake_dispatcher.h"
#include "process_probe.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace test_peer;

class RunnerProcessTest : public RunnerTest {
 protected:
  void SetUp() override {
    RunnerTest::SetUp();
    if (!test::file_exists(test::bin("ci-runner")))
      GTEST_SKIP() << test::bin("ci-runner") << " is missing: build the ci-runner target";
    fake.start();
  }

  // Starts ci-runner with `test_command` and waits until it has registered.
  std::unique_ptr<test::Daemon> start_daemon(const std::string& test_command,
                                             std::vector<std::string> flags = {}) {
    std::vector<std::string> args{"--port",
                                  "0",
                                  "--dispatcher-server",
                                  "127.0.0.1:" + std::to_string(fake.port()),
                                  "--test-command",
                                  test_command,
                                  "--spool-dir",
                                  dir / "spool",
                                  "--state-dir",
                                  dir / "state",
                                  "--sandbox",
                                  "off",
                                  "--log-level",
                                  "debug"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(dir / "clone");
    auto daemon = std::make_unique<test::Daemon>("ci-runner", args, dir / "runner.log");
    port = daemon->wait_listening();
    EXPECT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
    return daemon;
  }

  // A test that starts a grandchild and runs until the gate opens.
  std::string long_test() {
    gate = make_gate();
    return "echo $$ > '" + (dir / "shell") + "'; sleep 300 & echo $! > '" + (dir / "child") +
           "'; cat '" + gate + "' > /dev/null; echo finished";
  }

  void wait_test_started() {
    shell = wait_for_pid(dir / "shell");
    child = wait_for_pid(dir / "child");
    ASSERT_GT(shell, 0);
    ASSERT_GT(child, 0);
    group = test_probe::process_group(shell);
    ASSERT_GT(group, 0);
  }

  bool test_processes_gone() {
    return test::wait_until(
        [&] {
          return test_probe::process_gone(shell) && test_probe::process_gone(child) &&
                 test_probe::group_gone(group);
        },
        10s);
  }

  // Waits for the daemon to end by itself; its wait status, or -1.
  static int exit_status(test::Daemon& daemon) {
    if (!test::wait_until([&] { return !daemon.running(); }, 30s)) return -1;
    return daemon.stop();  // already ended: only collects the status
  }

  // A figure of /proc/<pid>/status in KiB ("VmRSS", "VmHWM"), or -1.
  static long status_kib(pid_t pid, const std::string& name) {
    std::istringstream status(test::read_text("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind(name + ":", 0) == 0) return std::stol(line.substr(name.size() + 1));
    }
    return -1;
  }

  uint16_t port = 0;
  std::string gate;
  pid_t shell = 0, child = 0, group = 0;
};

TEST_F(RunnerProcessTest, ARunnerKilledMidTestLeavesNoTestProcessBehind) {
  auto daemon = start_daemon("echo $$ > '" + (dir / "shell") + "'; sleep 300 & echo $! > '" +
                             (dir / "child") + "'; sleep 300");
  ASSERT_NE(port, 0);
  ASSERT_EQ(runtest(port, 4, commit), Reply::Kind::Ok);
  wait_test_started();
  EXPECT_NE(group, daemon->pid());
  daemon->kill(SIGKILL);
  int status = exit_status(*daemon);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_TRUE(test_processes_gone());
}

TEST_F(RunnerProcessTest, SigtermKillsTheTestGivesTheJobBackAndExitsZero) {
  auto daemon = start_daemon(long_test());
  ASSERT_NE(port, 0);
  ASSERT_EQ(runtest(port, 4, commit), Reply::Kind::Ok);
  wait_test_started();
  daemon->kill(SIGTERM);
  int status = exit_status(*daemon);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << daemon->log();
  EXPECT_TRUE(test_processes_gone());
  EXPECT_TRUE(fake.results().empty());
  ASSERT_EQ(fake.abandoned().size(), 1u);
  EXPECT_EQ(fake.abandoned().front().job, 4u);
  EXPECT_EQ(fake.abandoned().front().runner, "127.0.0.1:" + std::to_string(port));
  ASSERT_EQ(fake.unregistered().size(), 1u);
  EXPECT_EQ(fake.unregistered().front().port, port);
  EXPECT_TRUE(daemon->log_contains("stopping: killed the test of job 4 and gave it back"))
      << daemon->log();
}

TEST_F(RunnerProcessTest, DrainOnSigtermFinishesTheTestAndDeliversItsResults) {
  auto daemon = start_daemon(long_test(), {"--drain"});
  ASSERT_NE(port, 0);
  ASSERT_EQ(runtest(port, 4, commit), Reply::Kind::Ok);
  wait_test_started();
  daemon->kill(SIGTERM);
  ASSERT_TRUE(test::wait_until([&] { return daemon->log_contains("draining"); }));
  EXPECT_EQ(runtest(port, 5, commit), Reply::Kind::Busy);
  ASSERT_TRUE(open_gate(gate));
  int status = exit_status(*daemon);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << daemon->log();
  ASSERT_EQ(fake.results().size(), 1u);
  EXPECT_EQ(fake.results().front().output, "finished\n");
  EXPECT_TRUE(fake.abandoned().empty());
  EXPECT_EQ(fake.unregistered().size(), 1u);
  EXPECT_TRUE(daemon->log_contains("stopping: drained, every result delivered")) << daemon->log();
  EXPECT_TRUE(test_processes_gone());
}

TEST_F(RunnerProcessTest, ASecondSigtermCutsTheDrainShort) {
  auto daemon = start_daemon(long_test(), {"--drain"});
  ASSERT_NE(port, 0);
  ASSERT_EQ(runtest(port, 4, commit), Reply::Kind::Ok);
  wait_test_started();
  daemon->kill(SIGTERM);
  ASSERT_TRUE(test::wait_until([&] { return daemon->log_contains("draining"); }));
  daemon->kill(SIGTERM);
  int status = exit_status(*daemon);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << daemon->log();
  EXPECT_TRUE(test_processes_gone());
  EXPECT_TRUE(fake.results().empty());
  EXPECT_EQ(fake.abandoned().size(), 1u);
  EXPECT_TRUE(daemon->log_contains("stopping: killed the test of job 4 and gave it back"))
      << daemon->log();
}

TEST_F(RunnerProcessTest, A50MiBOutputRaisesTheRunnersMemoryByLittleMoreThanTheCapAndNotForLong) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer's runtime keeps freed memory on purpose";
#endif
  // Job 1 prints a line, job 2 prints 50 MiB, of which the default 4 MiB are kept.
  auto daemon = start_daemon(
      "if [ \"$CI_JOB_ID\" = 2 ]; then head -c 52428800 /dev/zero | tr '\\000' x; "
      "else echo small; fi");
  ASSERT_NE(port, 0);
  ASSERT_EQ(runtest(port, 1, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return fake.results().size() == 1; }));
  ASSERT_TRUE(test::wait_until([&] { return pong(port) == "pong idle"; }));
  long before = status_kib(daemon->pid(), "VmRSS");
  ASSERT_GT(before, 0);
  // The peak from here on: writing 5 to clear_refs sets it to the resident set now.
  std::ofstream("/proc/" + std::to_string(daemon->pid()) + "/clear_refs") << "5";

  ASSERT_EQ(runtest(port, 2, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return fake.results().size() == 2; }, 60s));
  const ResultsRequest big = fake.results().back();
  EXPECT_EQ(big.status, TestStatus::Passed);
  EXPECT_GT(big.output.size(), 4u << 20);
  EXPECT_LT(big.output.size(), (4u << 20) + 100);
  ASSERT_TRUE(test::wait_until([&] { return pong(port) == "pong idle"; }));
  long peak = status_kib(daemon->pid(), "VmHWM");
  // What the runner holds at most: two copies of the kept output (the results message,
  // and that message framed on its way to the spool or the dispatcher); the rest of
  // the 50 MiB goes through a 64 KiB buffer.
  EXPECT_LT(peak - before, 2 * 4096 + 2048) << "KiB; before: " << before;
  // Given back once the results are delivered.
  EXPECT_TRUE(
      test::wait_until([&] { return status_kib(daemon->pid(), "VmRSS") < before + 1024; }, 10s))
      << status_kib(daemon->pid(), "VmRSS") << " KiB; before: " << before;
}

TEST_F(RunnerProcessTest, WithoutTheGuardBesideItTheRunnerDoesNotStart) {
  std::string lone = dir / "bin/ci-runner";
  std::filesystem::create_directories(dir / "bin");
  std::filesystem::copy_file(test::bin("ci-runner"), lone);
  CommandSpec spec;
  spec.argv = {lone,
               "--port",
               "0",
               "--dispatcher-server",
               "127.0.0.1:" + std::to_string(fake.port()),
               dir / "clone"};
  spec.env = current_environment();
  spec.timeout = 20s;
  auto ran = run_command(spec);
  ASSERT_TRUE(ran.ok()) << ran.error();
  EXPECT_EQ(ran->exit_code, 1) << ran->output;
  EXPECT_NE(ran->output.find(dir / "bin/ci-test-guard"), std::string::npos) << ran->output;
  EXPECT_TRUE(fake.registrations().empty());
}

TEST_F(RunnerProcessTest, ANonLoopbackAddressNeedsATokenOrInsecure) {
  CommandSpec spec;
  spec.argv = {test::bin("ci-runner"), "--host", "0.0.0.0", "--port", "0", dir / "clone"};
  spec.env = current_environment();
  std::erase_if(spec.env, [](const std::string& e) { return e.starts_with("CI_TOKEN_FILE="); });
  spec.timeout = 20s;
  auto ran = run_command(spec);
  ASSERT_TRUE(ran.ok()) << ran.error();
  EXPECT_EQ(ran->exit_code, 2) << ran->output;
  EXPECT_NE(ran->output.find("without a token"), std::string::npos) << ran->output;
}

}  // namespace
}  // namespace ci::runner
