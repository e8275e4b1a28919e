// The runner keeps finished jobs' results in its spool until the dispatcher has them:
// across a dispatcher that is down and across a restart of the runner itself.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "ci/files.h"
#include "fake_dispatcher.h"
#include "process_probe.h"
#include "runner/result_spool.h"
#include "runner/runner.h"
#include "runner/running_job_record.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace test_peer;

// Index of the first `verb` in `verbs`, or verbs.size().
size_t first(const std::vector<std::string>& verbs, const std::string& verb) {
  return static_cast<size_t>(std::find(verbs.begin(), verbs.end(), verb) - verbs.begin());
}

TEST_F(RunnerTest, KeepsResultsInTheSpoolWhileTheDispatcherIsDownAndDeliversThemOnce) {
  options.job.test_command = "echo done";
  test::HeldPort held;  // the dispatcher comes later, on this port
  uint16_t dispatcher_port = held.port();
  start_runner(dispatcher_port);
  uint16_t port = runner->port();
  ASSERT_EQ(runtest(port, 5, commit), Reply::Kind::Ok);

  ASSERT_TRUE(test::wait_until([&] { return test::file_exists(spool_file(5)); }));
  std::string spooled = test::read_text(spool_file(5));
  EXPECT_TRUE(spooled.starts_with("results 5 1 127.0.0.1:" + std::to_string(port) + " passed "))
      << spooled;
  EXPECT_TRUE(spooled.ends_with(" 5\ndone\n")) << spooled;
  EXPECT_EQ(pong(port), "pong busy 5 1");
  EXPECT_EQ(runtest(port, 6, commit), Reply::Kind::Busy);
  EXPECT_EQ(runtest(port, 5, commit), Reply::Kind::Ok) << "a repeated runtest is the same job";

  fake.start(dispatcher_port);
  ASSERT_TRUE(test::wait_until([&] { return !test::file_exists(spool_file(5)); }));
  EXPECT_TRUE(test::wait_until([&] { return pong(port) == "pong idle"; }));
  ASSERT_EQ(fake.results().size(), 1u);
  EXPECT_EQ(fake.results().front().output, "done\n");
  std::vector<std::string> verbs = fake.verbs();
  EXPECT_LT(first(verbs, "register"), first(verbs, "results")) << "registers first";
  EXPECT_EQ(runtest(port, 6, commit), Reply::Kind::Ok) << "free for a new job";
  EXPECT_TRUE(test::wait_until([&] { return fake.results().size() == 2; }));
}

TEST_F(RunnerTest, ARestartedRunnerDeliversWhatTheEarlierOneSpooled) {
  options.job.test_command = "echo first run";
  test::HeldPort held;  // the dispatcher comes later, on this port
  uint16_t dispatcher_port = held.port();
  start_runner(dispatcher_port);
  ASSERT_EQ(runtest(runner->port(), 5, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return test::file_exists(spool_file(5)); }));
  runner->stop();
  EXPECT_EQ(log_count("remain in the spool"), 1u);
  ASSERT_TRUE(test::file_exists(spool_file(5)));

  start_runner(dispatcher_port);  // a new Runner, the dispatcher still down
  EXPECT_EQ(log_count("results from an earlier run in the spool"), 1u);
  EXPECT_EQ(pong(runner->port()), "pong busy 5 1");
  EXPECT_EQ(runtest(runner->port(), 6, commit), Reply::Kind::Busy);
  fake.start(dispatcher_port);
  ASSERT_TRUE(test::wait_until([&] { return !test::file_exists(spool_file(5)); }));
  EXPECT_TRUE(test::wait_until([&] { return pong(runner->port()) == "pong idle"; }));
  ASSERT_EQ(fake.results().size(), 1u);
  EXPECT_EQ(fake.results().front().output, "first run\n");
  std::vector<std::string> verbs = fake.verbs();
  EXPECT_LT(first(verbs, "register"), first(verbs, "results")) << "registers first";
}

TEST_F(RunnerTest, DropsSpooledResultsTheDispatcherRefuses) {
  ResultSpool spool(dir / "spool");
  ASSERT_TRUE(spool.open().ok());
  SpooledResult left = spool.prepare(
      ResultsRequest{7, 2, "127.0.0.1:8901", TestStatus::Passed, 1, 0, 12, "old output\n", ""});
  ASSERT_TRUE(spool.write(left).ok());
  fake.start();
  fake.refuse_results();
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return test::list_dir(dir / "spool").empty(); }));
  EXPECT_TRUE(test::wait_until([&] { return pong(runner->port()) == "pong idle"; }));
  ASSERT_EQ(fake.results().size(), 1u);
  EXPECT_EQ(fake.results().front().runner, "127.0.0.1:8901") << "sent as it was spooled";
  EXPECT_EQ(log_count("refused the results"), 1u);
}

TEST_F(RunnerTest, ResultsAnEarlierVersionLeftInTheClonesSpoolAreDelivered) {
  // Before runners had a state folder, the spool was in the clone's .git folder.
  ResultSpool old(dir / "clone/.git/ci-runner-spool");
  ASSERT_TRUE(old.open().ok());
  SpooledResult left = old.prepare(
      ResultsRequest{9, 1, "127.0.0.1:8901", TestStatus::Passed, 1, 0, 12, "from before\n", ""});
  ASSERT_TRUE(old.write(left).ok());
  fake.start();
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return fake.results().size() == 1; }));
  EXPECT_EQ(fake.results().front().output, "from before\n");
  EXPECT_TRUE(test::list_dir(dir / "clone/.git/ci-runner-spool").empty());
}

// With a backoff far longer than the test waits, only the wake-up can deliver in time.
class RunnerWakeTest : public RunnerTest {
 protected:
  void SetUp() override {
    RunnerTest::SetUp();
    options.retry_initial = 60s;
    options.retry_max = 60s;
    options.dispatcher_timeout = 120s;
  }

  // Runs job 5 to its end while the dispatcher is down, then brings it back.
  void finish_a_job_with_the_dispatcher_down() {
    std::string gate = make_gate();
    options.job.test_command = "cat '" + gate + "' > /dev/null; echo done";
    fake.start();
    uint16_t dispatcher_port = fake.port();
    start_runner();
    ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
    ASSERT_EQ(runtest(runner->port(), 5, commit), Reply::Kind::Ok);
    fake.stop();
    ASSERT_TRUE(open_gate(gate));
    ASSERT_TRUE(test::wait_until([&] { return log_count("cannot deliver") > 0; }));
    fake.start(dispatcher_port);
  }
};

TEST_F(RunnerWakeTest, APingDeliversWaitingResultsAtOnce) {
  finish_a_job_with_the_dispatcher_down();
  EXPECT_EQ(pong(runner->port()), "pong busy 5 1");
  EXPECT_TRUE(test::wait_until([&] { return !fake.results().empty(); }, 20s));
  EXPECT_TRUE(test::wait_until([&] { return pong(runner->port()) == "pong idle"; }));
}

TEST_F(RunnerWakeTest, ARuntestDeliversWaitingResultsAtOnce) {
  finish_a_job_with_the_dispatcher_down();
  EXPECT_EQ(runtest(runner->port(), 6, commit), Reply::Kind::Busy);
  EXPECT_TRUE(test::wait_until([&] { return !fake.results().empty(); }, 20s));
  EXPECT_TRUE(test::wait_until([&] { return pong(runner->port()) == "pong idle"; }));
}

TEST_F(RunnerTest, TheStateFolderIsBesideTheCloneAndHoldsTheSpoolByDefault) {
  options.spool_dir.clear();
  options.state_dir.clear();
  fake.start();
  start_runner();
  std::string state = dir / "clone.ci-runner";
  EXPECT_EQ(runner->state_dir(), state);
  EXPECT_EQ(runner->spool_dir(), state + "/spool");
  EXPECT_TRUE(test::file_exists(state + "/spool"));
  EXPECT_FALSE(test::file_exists(dir / "clone/.git/ci-runner-spool")) << "nothing in the clone";
}

TEST_F(RunnerTest, ASecondRunnerOnTheSameStateFolderIsRefused) {
  fake.start();
  start_runner();
  Runner second(options);
  auto started = second.start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().find("another ci-runner uses the state folder"), std::string::npos)
      << started.error();
}

TEST_F(RunnerTest, NotesTheProcessGroupOfTheRunningTest) {
  std::string gate = make_gate();
  options.job.test_command = "echo $$ > '" + (dir / "shell") + "'; cat '" + gate + "' > /dev/null";
  fake.start();
  start_runner();
  ASSERT_EQ(runtest(runner->port(), 5, commit), Reply::Kind::Ok);
  pid_t shell = wait_for_pid(dir / "shell");
  pid_t group = test_probe::process_group(shell);
  ASSERT_GT(group, 0);
  EXPECT_NE(group, shell) << "the guard leads the group";
  std::string noted = std::to_string(group) + " 5 1 " + commit + "\n";
  EXPECT_TRUE(test::wait_until([&] {
    return test::read_text(dir / "state/running-test") == noted;
  })) << test::read_text(dir / "state/running-test");
  ASSERT_TRUE(open_gate(gate));
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  EXPECT_FALSE(test::file_exists(dir / "state/running-test"));
}

TEST_F(RunnerTest, StartKillsWhatAnEarlierRunLeftOfItsTest) {
  // What a runner killed together with its test's guard leaves: the test's processes,
  // still in their group, with the job's environment.
  std::vector<std::string> env = current_environment();
  env.insert(env.end(), {"CI_JOB_ID=4", "CI_ATTEMPT=2", "CI_COMMIT=" + commit});
  std::string pid_file = dir / "leftover";
  auto leftover =
      ChildProcess::spawn({"setsid", "sh", "-c", "sleep 300 & echo $! > '" + pid_file + "'; wait"},
                          dir / "leftover.log", env);
  ASSERT_TRUE(leftover.ok()) << leftover.error();
  pid_t sleeper = wait_for_pid(pid_file);
  pid_t group = test_probe::process_group(sleeper);
  ASSERT_EQ(group, leftover->pid());
  ASSERT_TRUE(make_dirs(dir / "state").ok());
  ASSERT_TRUE(
      RunningJobRecord(dir / "state/running-test").write(group, {4, 2, commit, "master"}).ok());

  fake.start();
  start_runner();
  EXPECT_TRUE(test::wait_until(
      [&] { return test_probe::process_gone(sleeper) && test_probe::group_gone(group); }, 10s));
  EXPECT_EQ(log_count("killed 2 process(es) left running by job 4 attempt 2"), 1u);
  EXPECT_FALSE(test::file_exists(dir / "state/running-test"));
  EXPECT_EQ(pong(runner->port()), "pong idle");
}

}  // namespace
}  // namespace ci::runner

namespace ci::runner {
namespace {

TEST_F(RunnerTest, AsRootWithAStateFolderTheTestUserCannotReachCheckoutsGoElsewhere) {
  if (::geteuid() != 0) GTEST_SKIP() << "only a runner running as root switches users";
  std::string closed = dir / "closed";
  ASSERT_TRUE(make_dirs(closed).ok());
  ::chmod(closed.c_str(), 0700);
  options.state_dir = closed + "/state";
  options.job.test_command = "pwd; id -u";
  // What a runner that is gone left there, its state folder gone with it.
  auto gone = ChildProcess::spawn({"true"}, dir / "gone.log");
  ASSERT_TRUE(gone.ok()) << gone.error();
  pid_t dead = gone->pid();
  gone->wait(10s);
  std::string left = "/var/tmp/tinyci-work-" + std::to_string(dead) + "-test00";
  ASSERT_TRUE(make_dirs(left + "/7-1").ok());
  fake.start();
  start_runner();
  std::string work = runner->work_root();
  EXPECT_EQ(work.rfind("/var/tmp/tinyci-work-" + std::to_string(::getpid()) + "-", 0), 0u) << work;
  EXPECT_FALSE(test::file_exists(left)) << "a gone runner's work folder is removed";
  ASSERT_EQ(runtest(runner->port(), 5, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  EXPECT_EQ(fake.results().front().output, work + "/5-1\n65534\n");
  runner->stop();
  EXPECT_FALSE(test::file_exists(work)) << "the runner's work folder goes with it";
}

}  // namespace
}  // namespace ci::runner

namespace ci::runner {
namespace {

TEST_F(RunnerTest, ASharedFolderThatHoldsTheRunnersOwnIsRefused) {
  options.job.sandbox.enabled = true;
  options.job.sandbox.shared = {dir.path()};  // holds the clone and the state folder
  Runner refused(options);
  auto started = refused.start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().find("--sandbox-share " + dir.path() + " would let every test reach"),
            std::string::npos)
      << started.error();
}

}  // namespace
}  // namespace ci::runner
