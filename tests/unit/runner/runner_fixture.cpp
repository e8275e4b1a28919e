#include "runner_fixture.h"

#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ci/validate.h"
#include "process_probe.h"

namespace ci::runner {

using namespace std::chrono_literals;

void RunnerTest::SetUp() {
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
  options.spool_dir = dir / "spool";
  options.state_dir = dir / "state";
  // These tests are about the runner, not the sandbox (see sandbox_test.cpp): their
  // commands talk to the test through files in `dir`. Run as root, the runner runs
  // them as the test user, who must be able to write there.
  options.job.sandbox.enabled = false;
  ::chmod(dir.path().c_str(), 0777);
  options.retry_initial = 10ms;
  options.retry_max = 200ms;
}

void RunnerTest::TearDown() {
  runner.reset();
  spdlog::set_default_logger(previous_logger_);
}

void RunnerTest::start_runner(uint16_t dispatcher_port) {
  options.dispatcher = HostPort{"127.0.0.1", dispatcher_port ? dispatcher_port : fake.port()};
  runner = std::make_unique<Runner>(options);
  auto started = runner->start();
  ASSERT_TRUE(started.ok()) << started.error();
}

size_t RunnerTest::log_count(const std::string& text) {
  size_t n = 0;
  for (const auto& line : log_->last_formatted())
    if (line.find(text) != std::string::npos) ++n;
  return n;
}

std::string RunnerTest::make_gate(const std::string& name) {
  std::string gate = dir / name;
  EXPECT_EQ(::mkfifo(gate.c_str(), 0600), 0);
  ::chmod(gate.c_str(), 0666);  // for the test user, when the runner runs as root
  return gate;
}

bool RunnerTest::open_gate(const std::string& gate) {
  return test::wait_until([&] {
    int fd = ::open(gate.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return false;  // ENXIO until the job reads it
    ::close(fd);
    return true;
  });
}

pid_t RunnerTest::wait_for_pid(const std::string& file) {
  pid_t pid = 0;
  test::wait_until([&] {
    std::string text = test::read_text(file);
    if (text.empty() || text.back() != '\n') return false;
    text.pop_back();
    pid = static_cast<pid_t>(parse_u64(text, INT32_MAX).value_or(0));
    return true;
  });
  return pid;
}

std::string RunnerTest::spool_file(JobId job, uint32_t attempt) const {
  return dir / ("spool/" + std::to_string(job) + "-" + std::to_string(attempt) + ".result");
}

void LongJobRunnerTest::start_a_long_job(JobId job) {
  gate = make_gate();
  options.job.test_command = "echo $$ > '" + (dir / "shell") + "'; sleep 300 & echo $! > '" +
                             (dir / "child") + "'; cat '" + gate + "' > /dev/null; echo finished";
  fake.start();
  start_runner();
  ASSERT_TRUE(test::wait_until([&] { return !fake.registrations().empty(); }));
  ASSERT_EQ(test_peer::runtest(runner->port(), job, commit), Reply::Kind::Ok);
  shell = wait_for_pid(dir / "shell");
  child = wait_for_pid(dir / "child");
  ASSERT_GT(shell, 0);
  ASSERT_GT(child, 0);
  group = test_probe::process_group(shell);
  ASSERT_GT(group, 0);
}

bool LongJobRunnerTest::test_processes_gone(std::chrono::milliseconds timeout) {
  return test::wait_until(
      [&] {
        return test_probe::process_gone(shell) && test_probe::process_gone(child) &&
               test_probe::group_gone(group);
      },
      timeout);
}

}  // namespace ci::runner
