// Each job's cgroup, on this machine's cgroup v2 hierarchy. Where the runner cannot make
// cgroups (no v2 hierarchy, no write access), what it says instead is checked.
#include "runner/cgroup.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <string>

#include "ci/process.h"
#include "ci/validate.h"
#include "process_probe.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;

TEST(JobCgroups, EndsEveryProcessOfTheCommandEvenOnesThatLeftItsSession) {
  auto cgroups = JobCgroups::open({});
  if (!cgroups) GTEST_SKIP() << "no cgroups here: " << cgroups.error();
  auto made = cgroups->make("test-job-1-1");
  ASSERT_TRUE(made.ok()) << made.error();
  ASSERT_EQ(made->rfind(cgroups->base() + "/tinyci-" + std::to_string(::getpid()) + "-", 0), 0u);

  CommandSpec spec;
  spec.argv = {"/bin/sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!"};
  spec.env = current_environment();
  spec.guard = true;
  spec.cgroup = *made;
  auto ran = run_command(spec);
  ASSERT_TRUE(ran.ok()) << ran.error();
  std::string text = ran->output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  auto sleeper = static_cast<pid_t>(parse_u64(text, INT32_MAX).value_or(0));
  ASSERT_GT(sleeper, 0) << ran->output;
  EXPECT_TRUE(test::wait_until([&] { return test_probe::process_gone(sleeper); }, 10s))
      << "the process that left the session survived its command";
  auto removed = JobCgroups::kill_and_remove(*made, 5s);
  EXPECT_TRUE(removed.ok()) << removed.error();
  EXPECT_FALSE(test::file_exists(*made));
}

TEST(JobCgroups, KillAndRemoveEmptiesACgroupAProcessStillRunsIn) {
  auto cgroups = JobCgroups::open({});
  if (!cgroups) GTEST_SKIP() << "no cgroups here: " << cgroups.error();
  auto made = cgroups->make("test-job-2-1");
  ASSERT_TRUE(made.ok()) << made.error();
  test::TempDir dir;
  auto child = ChildProcess::spawn(
      {"/bin/sh", "-c", "echo $$ > '" + *made + "/cgroup.procs' && exec sleep 300"},
      dir / "child.log");
  ASSERT_TRUE(child.ok()) << child.error();
  ASSERT_TRUE(test::wait_until([&] {
    return test::read_text(*made + "/cgroup.procs") == std::to_string(child->pid()) + "\n";
  }));
  auto removed = JobCgroups::kill_and_remove(*made, 5s);
  ASSERT_TRUE(removed.ok()) << removed.error();
  EXPECT_NE(child->wait(10s), -1) << "the process in the cgroup was killed";
  EXPECT_FALSE(test::file_exists(*made));
}

TEST(JobCgroups, LimitsAreSetOrTheirAbsenceExplained) {
  CgroupLimits limits;
  limits.memory_max = 256u << 20;
  limits.pids_max = 64;
  auto cgroups = JobCgroups::open(limits);
  if (!cgroups) {
    // Either no cgroups at all, or no controller for the limits: the error says which.
    const std::string& why = cgroups.error();
    EXPECT_TRUE(why.find("controller") != std::string::npos ||
                why.find("cgroup") != std::string::npos)
        << why;
    if (JobCgroups::open({}).ok()) {
      EXPECT_NE(why.find("controller"), std::string::npos) << why;
    }
    return;
  }
  auto made = cgroups->make("test-job-3-1");
  ASSERT_TRUE(made.ok()) << made.error();
  EXPECT_EQ(test::read_text(*made + "/memory.max"), std::to_string(256u << 20) + "\n");
  EXPECT_EQ(test::read_text(*made + "/pids.max"), "64\n");
  EXPECT_TRUE(JobCgroups::kill_and_remove(*made, 5s).ok());
}

}  // namespace
}  // namespace ci::runner
