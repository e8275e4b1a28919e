#include "runner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>

#include "process_probe.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using test::TempDir;

// A dispatcher reduced to what a runner needs: it records registrations and results
// and answers OK (or ERR to results, when told to).
class FakeDispatcher {
 public:
  ~FakeDispatcher() { stop(); }

  void start(uint16_t port = 0) {
    ServerOptions options;
    options.port = port;
    server_ = std::make_unique<LineServer>(
        options, request_has_body,
        [this](const Frame& frame, const std::string&) { return handle(frame); });
    auto started = server_->start();
    ASSERT_TRUE(started.ok()) << started.error();
    port_ = server_->port();
  }
  void stop() { server_.reset(); }
  uint16_t port() const { return port_; }

  void refuse_results() {
    std::lock_guard lock(mu_);
    refuse_results_ = true;
  }
  std::vector<RegisterRequest> registrations() {
    std::lock_guard lock(mu_);
    return registrations_;
  }
  std::vector<ResultsRequest> results() {
    std::lock_guard lock(mu_);
    return results_;
  }

 private:
  Response handle(const Frame& frame) {
    auto request = parse_request(frame);
    if (!request) return {serialize_reply(Reply::err(request.error())), true};
    std::lock_guard lock(mu_);
    if (auto* r = std::get_if<RegisterRequest>(&*request)) {
      registrations_.push_back(*r);
      return {serialize_reply(Reply::ok())};
    }
    if (auto* r = std::get_if<ResultsRequest>(&*request)) {
      results_.push_back(*r);
      if (refuse_results_) return {serialize_reply(Reply::err("job 7 is not known")), true};
      return {serialize_reply(Reply::ok())};
    }
    return {serialize_reply(Reply::err("unexpected")), true};
  }

  std::unique_ptr<LineServer> server_;
  uint16_t port_ = 0;
  std::mutex mu_;
  bool refuse_results_ = false;
  std::vector<RegisterRequest> registrations_;
  std::vector<ResultsRequest> results_;
};

// A port that was free a moment ago, for a dispatcher started after the runner.
uint16_t reserve_port() {
  FakeDispatcher probe;
  probe.start();
  return probe.port();
}

Result<Reply> call(uint16_t port, const Frame& frame) {
  LineClient client("127.0.0.1", port);
  auto reply = client.call_frame(frame);
  if (!reply) return Error{reply.error()};
  return parse_reply(*reply);
}

Result<Reply> call(uint16_t port, const Request& request) {
  return call(port, serialize_request(request));
}

std::string pong(uint16_t port) {
  auto reply = call(port, Request{PingRequest{}});
  if (!reply) return "no reply: " + reply.error();
  if (reply->kind != Reply::Kind::Pong) return "not a pong";
  return "pong " + reply->reason();
}

Reply::Kind runtest(uint16_t port, JobId job, const std::string& commit) {
  auto reply = call(port, Request{RuntestRequest{job, 1, commit, "master"}});
  EXPECT_TRUE(reply.ok()) << reply.error();
  return reply ? reply->kind : Reply::Kind::Err;
}

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The runner's log, captured so that tests can wait for what it reports.
    log_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
    auto logger = std::make_shared<spdlog::logger>(
        "ci-runner",
        spdlog::sinks_init_list{log_, std::make_shared<spdlog::sinks::stderr_sink_mt>()});
    logger->set_level(spdlog::level::debug);
    previous_logger_ = spdlog::default_logger();
    spdlog::set_default_logger(logger);

    commit = test::make_master_repo(dir / "master");
    test::clone_repo(dir / "master", dir / "clone");
    options.port = 0;
    options.job.repo = dir / "clone";
    options.job.kill_grace = 500ms;
    options.retry_initial = 10ms;
    options.retry_max = 200ms;
  }

  void TearDown() override {
    runner.reset();
    spdlog::set_default_logger(previous_logger_);
  }

  // Starts the runner against `dispatcher_port` (the fake dispatcher's by default).
  void start_runner(uint16_t dispatcher_port = 0) {
    options.dispatcher = HostPort{"127.0.0.1", dispatcher_port ? dispatcher_port : fake.port()};
    runner = std::make_unique<Runner>(options);
    auto started = runner->start();
    ASSERT_TRUE(started.ok()) << started.error();
  }

  size_t log_count(const std::string& text) {
    size_t n = 0;
    for (const auto& line : log_->last_formatted())
      if (line.find(text) != std::string::npos) ++n;
    return n;
  }

  // A named pipe the test command reads: the job runs until the test opens it.
  std::string make_gate() {
    std::string gate = dir / "gate";
    EXPECT_EQ(::mkfifo(gate.c_str(), 0600), 0);
    return gate;
  }
  bool open_gate(const std::string& gate) {
    return test::wait_until([&] {
      int fd = ::open(gate.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) return false;  // ENXIO until the job reads it
      ::close(fd);
      return true;
    });
  }

  TempDir dir;
  std::string commit;
  RunnerOptions options;
  FakeDispatcher fake;
  std::unique_ptr<Runner> runner;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log_;
  std::shared_ptr<spdlog::logger> previous_logger_;
};

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
  uint16_t port = reserve_port();
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
}

TEST_F(RunnerTest, StopKillsARunningTestAndReportsNothing) {
  std::string pid_file = dir / "pid";
  options.job.test_command = "sleep 300 & echo $! > '" + pid_file + "'; wait";
  fake.start();
  start_runner();
  ASSERT_EQ(runtest(runner->port(), 9, commit), Reply::Kind::Ok);
  pid_t child = 0;
  ASSERT_TRUE(test::wait_until([&] {
    std::string text = test::read_text(pid_file);
    if (text.empty() || text.back() != '\n') return false;
    child = static_cast<pid_t>(std::stol(text));
    return true;
  }));
  runner->stop();
  EXPECT_TRUE(test::wait_until([&] { return test_probe::process_gone(child); }, 10s));
  EXPECT_TRUE(fake.results().empty());
  EXPECT_EQ(log_count("cancelled by shutdown"), 1u);
}

TEST_F(RunnerTest, WithoutAPortTakesTheFirstFreeOneFrom8900) {
  options.port.reset();
  fake.start();
  start_runner();
  Runner second(options);
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
