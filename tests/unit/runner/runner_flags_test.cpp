// ci-runner's flags for many repositories, slots and labels, as a user types them:
// what is missing or wrong is refused with a message naming it. These tests need the
// executable next to the test binary (the ci-runner target built) and are skipped
// without it.
#include <gtest/gtest.h>

#include "ci/process.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;

class RunnerFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::file_exists(test::bin("ci-runner")))
      GTEST_SKIP() << test::bin("ci-runner") << " is missing: build the ci-runner target";
  }

  // Runs ci-runner with `args`; its exit code and output.
  CommandResult run_runner(std::vector<std::string> args) {
    CommandSpec spec;
    spec.argv = {test::bin("ci-runner")};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.timeout = 20s;
    auto ran = run_command(spec);
    EXPECT_TRUE(ran.ok()) << ran.error();
    return ran ? *ran : CommandResult{};
  }

  test::TempDir dir;
};

TEST_F(RunnerFlagsTest, WithoutAClonePathOrAWorkdirItSaysWhatIsMissing) {
  CommandResult ran = run_runner({"--sandbox", "off"});
  EXPECT_EQ(ran.exit_code, 2);
  EXPECT_NE(ran.output.find("REPO"), std::string::npos) << ran.output;
  EXPECT_NE(ran.output.find("--workdir"), std::string::npos) << ran.output;
}

TEST_F(RunnerFlagsTest, ABadLabelIsRefusedNamingTheFlag) {
  CommandResult ran =
      run_runner({"--workdir", dir / "w", "--label", "linux", "--label", "no good"});
  EXPECT_EQ(ran.exit_code, 2);
  EXPECT_NE(ran.output.find("--label"), std::string::npos) << ran.output;
  EXPECT_NE(ran.output.find("no good"), std::string::npos) << ran.output;
}

TEST_F(RunnerFlagsTest, SlotsOutOfRangeAreRefused) {
  for (const char* slots : {"0", "65"}) {
    CommandResult ran = run_runner({"--workdir", dir / "w", "--slots", slots});
    EXPECT_EQ(ran.exit_code, 2) << slots;
    EXPECT_NE(ran.output.find("--slots"), std::string::npos) << ran.output;
  }
}

}  // namespace
}  // namespace ci::runner
