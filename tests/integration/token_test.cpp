// Contract 4: with a shared token, nothing works before authentication, a wrong token
// is refused, and cictl and the three daemons work with the right one.
#include <gtest/gtest.h>

#include <fstream>

#include "ci/auth.h"
#include "cluster.h"

namespace ci::test {
namespace {

std::string run_cictl(const std::vector<std::string>& args, int* exit_code) {
  CommandSpec spec;
  spec.argv = {bin("cictl")};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = current_environment();
  spec.timeout = std::chrono::seconds(20);
  auto r = run_command(spec);
  *exit_code = r.ok() ? r->exit_code : -1;
  return r.ok() ? r->output : r.error();
}

TEST(Token, EveryDaemonAndCictlWorkWithTheTokenAndNothingWithout) {
  Cluster c;
  make_master_repo(c.master());
  std::string token_file = c.path("token");
  const std::string token = "a-shared-secret-of-some-length";
  std::ofstream(token_file) << token << "\n";
  std::vector<std::string> with_token{"--token-file", token_file};
  c.start_dispatcher(with_token);
  auto runner_args = with_token;
  runner_args.insert(runner_args.end(), {"--test-command", "echo authenticated run"});
  c.start_runner(runner_args);
  ASSERT_TRUE(wait_until([&] {
    int code = 0;
    std::string out =
        run_cictl({"--dispatcher-server", c.server(), "--token-file", token_file, "status"}, &code);
    return code == 0 && out.find("runners              1") != std::string::npos;
  })) << c.dispatcher().log()
      << c.runner(0).log();
  c.start_observer(with_token);
  std::string commit = commit_file(c.master(), "x", "y");
  ASSERT_TRUE(c.wait_result(commit)) << c.observer().log();
  EXPECT_NE(c.result(commit).find("authenticated run"), std::string::npos);

  // Without the token: nothing.
  int code = 0;
  std::string out = run_cictl({"--dispatcher-server", c.server(), "status"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("requires authentication"), std::string::npos) << out;
  // With a wrong one: refused.
  std::string wrong_file = c.path("wrong");
  std::ofstream(wrong_file) << "not-the-shared-secret-at-all\n";
  out = run_cictl({"--dispatcher-server", c.server(), "--token-file", wrong_file, "status"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("refused the token"), std::string::npos) << out;
  // A forged registration without the token changes nothing.
  LineClient intruder("127.0.0.1", c.port());
  auto reply = intruder.call_frame(make_frame({"register", "127.0.0.1", "6666"}));
  EXPECT_FALSE(reply.ok());
  EXPECT_EQ(c.status_value("runners"), -1);  // cannot even ask without the token
  // The token is in no log.
  for (auto* d : {&c.dispatcher(), &c.runner(0), &c.observer()})
    EXPECT_EQ(d->log().find(token), std::string::npos);
}

TEST(Token, NonLoopbackAddressNeedsATokenOrInsecure) {
  TempDir dir;
  CommandSpec spec;
  spec.argv = {bin("ci-dispatcher"), "--host",  "0.0.0.0",     "--port", "0",
               "--results-dir",      dir / "r", "--state-dir", dir / "s"};
  spec.env = current_environment();
  spec.timeout = std::chrono::seconds(20);
  auto r = run_command(spec);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_NE(r->output.find("without a token"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("--insecure"), std::string::npos) << r->output;
}

TEST(Token, ShortOrMissingTokenFileIsAClearError) {
  TempDir dir;
  std::ofstream(dir / "short") << "abc\n";
  for (const auto& [file, words] : std::vector<std::pair<std::string, std::string>>{
           {dir / "short", "at least 16"}, {dir / "missing", "missing"}}) {
    CommandSpec spec;
    spec.argv = {bin("ci-dispatcher"), "--port", "0", "--token-file", file};
    spec.env = current_environment();
    spec.timeout = std::chrono::seconds(20);
    auto r = run_command(spec);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exit_code, 2) << r->output;
    EXPECT_NE(r->output.find(words), std::string::npos) << r->output;
  }
}

}  // namespace
}  // namespace ci::test
