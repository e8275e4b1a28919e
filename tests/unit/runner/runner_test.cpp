#include "runner/runner.h"

#include <gtest/gtest.h>

#include "fake_dispatcher.h"
#include "process_probe.h"
#include "runner_fixture.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using namespace test_peer;

TEST_F(RunnerTest, RegistersAndAnswersPingWhenIdle) {
  fake.start();
  start_runner();
  ASSERT_NE(runner->port(), 0);
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  RegisterRequest registration = fake.registrations().front();
  EXPECT_EQ(registration.host, "127.0.0.1");
  EXPECT_EQ(registration.port, runner->port());
  EXPECT_EQ(pong(runner->port()), "pong idle");
  EXPECT_EQ(log_count("listening on 127.0.0.1:" + std::to_string(runner->port())), 1u);
}

TEST_F(RunnerTest, RunsOneJobAtATimeAndDeliversItsExactOutput) {
  std::string gate = make_gate();
  options.job.test_command =
      "cat '" + gate + "' > /dev/null; printf 'line one\\nbin \\000\\377 end\\r\\n'";
  fake.start();
  start_runner();
  uint16_t port = runner->port();

  ASSERT_EQ(runtest(port, 7, commit), Reply::Kind::Ok);
  EXPECT_EQ(runtest(port, 8, commit), Reply::Kind::Busy);
  EXPECT_EQ(runtest(port, 7, commit), Reply::Kind::Ok) << "a repeated runtest is the same job";
  EXPECT_EQ(pong(port), "pong busy 7 1");
  ASSERT_TRUE(open_gate(gate));

  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  ResultsRequest results = fake.results().front();
  EXPECT_EQ(results.job, 7u);
  EXPECT_EQ(results.attempt, 1u);
  EXPECT_EQ(results.runner, "127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(results.status, TestStatus::Passed);
  EXPECT_EQ(results.tests_run, -1);
  EXPECT_EQ(results.tests_failed, -1);
  EXPECT_EQ(results.output, "line one\nbin \0\xff end\r\n"s);
  EXPECT_TRUE(test::wait_until([&] { return pong(port) == "pong idle"; }));
  EXPECT_EQ(fake.results().size(), 1u);
}

TEST_F(RunnerTest, ReportsUnittestCounts) {
  fake.start();
  start_runner();
  ASSERT_EQ(runtest(runner->port(), 3, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  ResultsRequest results = fake.results().front();
  EXPECT_EQ(results.status, TestStatus::Failed) << results.output;
  EXPECT_EQ(results.tests_run, 2);
  EXPECT_EQ(results.tests_failed, 1);
}

TEST_F(RunnerTest, AnswersMalformedMessagesWithErrAndKeepsServing) {
  fake.start();
  start_runner();
  uint16_t port = runner->port();
  auto bad = call(port, make_frame({"runtest", "7", "1", "not-a-commit", "master"}));
  ASSERT_TRUE(bad.ok()) << bad.error();
  EXPECT_EQ(bad->kind, Reply::Kind::Err);
  auto unknown = call(port, make_frame({"hello"}));
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->kind, Reply::Kind::Err);
  EXPECT_NE(unknown->reason().find("unknown verb"), std::string::npos);
  auto wrong = call(port, make_frame({"status"}));
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ(wrong->kind, Reply::Kind::Err);
  EXPECT_NE(wrong->reason().find("not a runner verb"), std::string::npos);
  EXPECT_EQ(pong(port), "pong idle");
}

TEST_F(RunnerTest, KeepsTryingToRegisterUntilTheDispatcherIsUp) {
  test::HeldPort held;  // the dispatcher comes later, on this port
  uint16_t port = held.port();
  start_runner(port);
  ASSERT_TRUE(test::wait_until([&] { return log_count("cannot register") > 0; }));
  fake.start(port);
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  EXPECT_EQ(fake.registrations().front().port, runner->port());
  EXPECT_EQ(log_count("cannot register"), 1u) << "logged once per failure streak";
}

TEST_F(RunnerTest, RegistersAgainWhenTheDispatcherIsSilent) {
  options.dispatcher_timeout = 100ms;
  fake.start();
  start_runner();
  EXPECT_TRUE(test::wait_until([&] { return fake.registrations().size() >= 3; }));
}

TEST_F(RunnerTest, DeliversResultsOnceTheDispatcherIsBack) {
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
  EXPECT_EQ(pong(runner->port()), "pong busy 5 1");
  fake.start(dispatcher_port);
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  EXPECT_EQ(fake.results().front().output, "done\n");
  EXPECT_TRUE(test::wait_until([&] { return pong(runner->port()) == "pong idle"; }));
  EXPECT_FALSE(test::file_exists(spool_file(5)));
  EXPECT_EQ(fake.results().size(), 1u);
}

TEST_F(RunnerTest, DropsResultsTheDispatcherRefuses) {
  options.job.test_command = "true";
  fake.start();
  fake.refuse_results();
  start_runner();
  ASSERT_EQ(runtest(runner->port(), 7, commit), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return pong(runner->port()) == "pong idle"; }));
  EXPECT_EQ(fake.results().size(), 1u);
  EXPECT_EQ(log_count("refused the results"), 1u);
  EXPECT_TRUE(test::list_dir(dir / "spool").empty());
}

TEST_F(RunnerTest, WithATokenEveryPeerProvesIt) {
  const std::string token = "a-shared-secret-of-some-length";
  options.token = token;
  options.job.test_command = "echo with token";
  fake.start(0, token);
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  uint16_t port = runner->port();
  EXPECT_NE(pong(port), "pong idle") << "a peer without the token gets nothing";
  EXPECT_NE(pong(port, "not-the-shared-secret-at-all"), "pong idle");
  EXPECT_EQ(pong(port, token), "pong idle");
  ASSERT_EQ(runtest(port, 3, commit, token), Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return !fake.results().empty(); }));
  EXPECT_EQ(fake.results().front().output, "with token\n");
  EXPECT_EQ(log_count(token), 0u) << "the token is in no log";
}

TEST_F(RunnerTest, WithoutAPortTakesTheFirstFreeOneFrom8900) {
  options.port.reset();
  fake.start();
  start_runner();
  RunnerOptions second_options = options;
  second_options.state_dir = dir / "second-state";
  second_options.spool_dir = dir / "second-spool";
  Runner second(second_options);
  ASSERT_TRUE(second.start().ok());
  EXPECT_GE(runner->port(), 8900);
  EXPECT_LE(runner->port(), 9000);
  EXPECT_GE(second.port(), 8900);
  EXPECT_LE(second.port(), 9000);
  EXPECT_NE(second.port(), runner->port());
}

TEST_F(RunnerTest, StartFailsWithoutARepositoryOrItsOrigin) {
  options.job.repo = dir / "missing";
  Runner no_repo(options);
  auto started = no_repo.start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().find(dir / "missing"), std::string::npos) << started.error();

  options.job.repo = dir / "master";  // a repository, but no remote
  Runner no_origin(options);
  started = no_origin.start();
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().find("no remote 'origin'"), std::string::npos) << started.error();
}

}  // namespace
}  // namespace ci::runner
