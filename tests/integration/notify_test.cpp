// The instant trigger: a git hook pokes the observer, which looks at once instead of
// at its next interval.
#include <gtest/gtest.h>

#include <filesystem>

#include "cluster.h"

namespace ci::test {
namespace {

namespace fs = std::filesystem;

TEST(Notify, PostCommitHookGetsACommitTestedWithoutWaitingForThePoll) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  c.start_runner({"--test-command", "true"});
  ASSERT_TRUE(c.wait_runners(1));
  // An hour between polls: only the poke can find the commit in time.
  Daemon& observer = c.start_observer({"--interval", "3600", "--listen", "127.0.0.1:0"});
  uint16_t port = observer.wait_listening();
  ASSERT_NE(port, 0);
  fs::copy_file(std::string(CI_SOURCE_DIR) + "/scripts/git-hooks/post-commit",
                c.master() + "/.git/hooks/post-commit");
  std::vector<std::string> env = current_environment();
  env.push_back("CI_OBSERVER=127.0.0.1:" + std::to_string(port));
  env.push_back("CICTL=" + bin("cictl"));
  env.push_back("GIT_AUTHOR_NAME=T");
  env.push_back("GIT_AUTHOR_EMAIL=t@example.com");
  env.push_back("GIT_COMMITTER_NAME=T");
  env.push_back("GIT_COMMITTER_EMAIL=t@example.com");
  CommandSpec spec;
  spec.argv = {"git", "-C", c.master(), "commit", "-q", "--allow-empty", "-m", "poke"};
  spec.env = env;
  spec.timeout = std::chrono::seconds(30);
  auto r = run_command(spec);
  ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->output : r.error());
  std::string commit = head_commit(c.master());
  EXPECT_TRUE(c.wait_result(commit, std::chrono::seconds(30)))
      << observer.log() << r->output << c.dispatcher().log();
}

TEST(Notify, CictlNotifyWithNoObserverSaysSo) {
  CommandSpec spec;
  spec.argv = {bin("cictl"), "notify", "--observer", "127.0.0.1:9"};
  spec.env = current_environment();
  spec.timeout = std::chrono::seconds(20);
  auto r = run_command(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 1);
  EXPECT_NE(r->output.find("127.0.0.1:9"), std::string::npos) << r->output;
}

}  // namespace
}  // namespace ci::test
