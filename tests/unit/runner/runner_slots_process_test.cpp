// A ci-runner process of several slots with only a workdir: SIGTERM gives back every
// job it runs and leaves the dispatcher. Needs the executable next to the test binary
// (the ci-runner target built); skipped without it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <set>

#include "fake_dispatcher.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace test_peer;

class RunnerSlotsProcessTest : public RunnerTest {
 protected:
  void SetUp() override {
    RunnerTest::SetUp();
    if (!test::file_exists(test::bin("ci-runner")))
      GTEST_SKIP() << test::bin("ci-runner") << " is missing: build the ci-runner target";
    fake.start();
  }
};

TEST_F(RunnerSlotsProcessTest, SigtermGivesBackEveryRunningJobAndUnregisters) {
  std::string test_command = "touch '" + (dir / "started.") + "'$CI_JOB_ID; sleep 300";
  test::Daemon daemon(
      "ci-runner",
      {"--port", "0", "--dispatcher-server", "127.0.0.1:" + std::to_string(fake.port()),
       "--test-command", test_command, "--sandbox", "off", "--slots", "2", "--workdir",
       dir / "workdir", "--label", "linux"},
      dir / "runner.log");
  uint16_t port = daemon.wait_listening();
  ASSERT_NE(port, 0);
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  RegisterRequest registered = fake.registrations().front();
  EXPECT_EQ(registered.slots, 2u);
  EXPECT_EQ(registered.repos, RepoScope::Named);
  EXPECT_EQ(registered.labels, std::vector<std::string>{"linux"});
  for (JobId job : {1, 2}) {
    auto reply =
        call(port, Request{RuntestRequest{job, 1, commit, "master", "alpha", dir / "master"}});
    ASSERT_TRUE(reply) << reply.error();
    ASSERT_EQ(reply->kind, Reply::Kind::Ok);
  }
  ASSERT_TRUE(test::wait_until([&] {
    return test::file_exists(dir / "started.1") && test::file_exists(dir / "started.2");
  })) << daemon.log();
  EXPECT_TRUE(test::file_exists(dir / "workdir/repos/alpha.git/HEAD"));
  daemon.kill(SIGTERM);
  ASSERT_TRUE(test::wait_until([&] { return !daemon.running(); }, 30s));
  int status = daemon.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::set<JobId> given_back;
  for (const auto& abandon : fake.abandoned()) given_back.insert(abandon.job);
  EXPECT_EQ(given_back, (std::set<JobId>{1, 2}));
  EXPECT_EQ(fake.unregistered().size(), 1u);
  EXPECT_TRUE(fake.results().empty());
}

}  // namespace
}  // namespace ci::runner
