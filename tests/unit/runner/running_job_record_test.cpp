#include "runner/running_job_record.h"

#include <gtest/gtest.h>
#include <signal.h>

#include "ci/validate.h"
#include "process_probe.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;

class RunningJobRecordTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (group > 0) ::kill(-group, SIGKILL);
  }

  // A process group of its own (a shell and its background sleep) with `env_vars`.
  void start_group(const std::vector<std::string>& env_vars) {
    std::vector<std::string> env = current_environment();
    env.insert(env.end(), env_vars.begin(), env_vars.end());
    std::string pid_file = dir / "pid";
    auto spawned = ChildProcess::spawn(
        {"setsid", "sh", "-c", "sleep 300 & echo $! > '" + pid_file + "'; wait"}, dir / "log", env);
    ASSERT_TRUE(spawned.ok()) << spawned.error();
    leader = std::move(*spawned);
    ASSERT_TRUE(test::wait_until([&] {
      std::string text = test::read_text(pid_file);
      if (text.empty() || text.back() != '\n') return false;
      sleeper = static_cast<pid_t>(parse_u64(text.substr(0, text.size() - 1)).value_or(0));
      return true;
    }));
    // `$!` is known as soon as the shell forks: wait until the child has become the
    // sleep, so that no count below meets it in the middle of its exec (when its
    // environment reads as empty).
    ASSERT_TRUE(test::wait_until([&] {
      return test::read_text("/proc/" + std::to_string(sleeper) + "/cmdline").rfind("sleep", 0) ==
             0;
    }));
    group = leader.pid();
    ASSERT_EQ(test_probe::process_group(sleeper), group);
  }

  test::TempDir dir;
  std::string commit = std::string(40, 'a');
  RunningJobRecord record{dir / "running-test"};
  ChildProcess leader;
  pid_t sleeper = 0, group = 0;
};

TEST_F(RunningJobRecordTest, NothingRecordedNothingDone) {
  EXPECT_FALSE(record.kill_leftovers().has_value());
}

TEST_F(RunningJobRecordTest, KillsTheRecordedGroupWhileItRunsTheJob) {
  start_group({"CI_JOB_ID=4", "CI_ATTEMPT=2", "CI_COMMIT=" + commit});
  ASSERT_TRUE(record.write(group, {4, 2, commit, "master"}).ok());
  auto left = record.kill_leftovers();
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(left->group, group);
  EXPECT_EQ(left->job, 4u);
  EXPECT_EQ(left->attempt, 2u);
  EXPECT_EQ(left->processes, 2u);
  EXPECT_TRUE(test::wait_until([&] { return test_probe::group_gone(group); }, 10s));
  EXPECT_FALSE(test::file_exists(dir / "running-test"));
}

TEST_F(RunningJobRecordTest, SparesAGroupThatIsNotTheJobs) {
  // The group id now belongs to something else (the same commit, another attempt).
  start_group({"CI_JOB_ID=4", "CI_ATTEMPT=3", "CI_COMMIT=" + commit});
  ASSERT_TRUE(record.write(group, {4, 2, commit, "master"}).ok());
  EXPECT_FALSE(record.kill_leftovers().has_value());
  EXPECT_FALSE(test_probe::process_gone(sleeper));
  EXPECT_FALSE(test::file_exists(dir / "running-test"));
}

TEST_F(RunningJobRecordTest, IgnoresAGarbledRecord) {
  start_group({"CI_JOB_ID=4", "CI_ATTEMPT=2", "CI_COMMIT=" + commit});
  test::run(
      {"sh", "-c", "echo '" + std::to_string(group) + " 4 x' > '" + (dir / "running-test") + "'"});
  EXPECT_FALSE(record.kill_leftovers().has_value());
  EXPECT_FALSE(test_probe::process_gone(sleeper));
  EXPECT_FALSE(test::file_exists(dir / "running-test"));
}

}  // namespace
}  // namespace ci::runner
