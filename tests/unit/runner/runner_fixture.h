// The fixture of the Runner tests: a master repository and the runner's clone in a
// temporary folder, a fake dispatcher, and the runner's log captured so that tests can
// wait for what it reports.
#pragma once

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "fake_dispatcher.h"
#include "runner/runner.h"
#include "test_support.h"

namespace ci::runner {

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts the runner against `dispatcher_port` (the fake dispatcher's by default).
  void start_runner(uint16_t dispatcher_port = 0);
  size_t log_count(const std::string& text);
  // A named pipe the test command reads: the job runs until the test opens it.
  std::string make_gate(const std::string& name = "gate");
  bool open_gate(const std::string& gate);
  // Waits for a file holding a process id and a newline, as `echo $! > file` writes.
  pid_t wait_for_pid(const std::string& file);
  std::string spool_file(JobId job, uint32_t attempt = 1) const;

  test::TempDir dir;
  std::string commit;
  RunnerOptions options;
  test_peer::FakeDispatcher fake;
  std::unique_ptr<Runner> runner;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log_;
  std::shared_ptr<spdlog::logger> previous_logger_;
};

// A runner registered with the fake dispatcher and running a job whose test (a shell
// and its background sleep) runs until the gate opens.
class LongJobRunnerTest : public RunnerTest {
 protected:
  // Gives the runner job `job` and waits until its test is running.
  void start_a_long_job(JobId job);
  // Whether the test's shell, its child and their process group are all gone within
  // `timeout`.
  bool test_processes_gone(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  std::string gate;
  pid_t shell = 0, child = 0, group = 0;
};

}  // namespace ci::runner
