// Cancel with real daemons: a running job's test, a tree of processes in the runner's
// sandbox, is gone soon after `cictl cancel`, and a `cictl dispatch --wait` of it ends
// with the exit code of a cancel; a job cancelled while it waits for a busy runner
// never runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>

#include "ci/process.h"
#include "cluster.h"

namespace ci::test {
namespace {

namespace fs = std::filesystem;

CommandResult cictl(Cluster& c, std::vector<std::string> args) { return c.cictl(std::move(args)); }

// The processes of the machine whose command line starts with `prefix` (arguments
// joined by spaces).
std::vector<pid_t> processes_starting(const std::string& prefix) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_text(it->path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.compare(0, prefix.size(), prefix) == 0) found.push_back(std::stoi(name));
  }
  return found;
}

JobRow job_of(Cluster& c, const std::string& commit) {
  for (const JobRow& row : jobs_of(c))
    if (row.commit == commit) return row;
  return {};
}

TEST(Cancel, ARunningJobsProcessesAreGoneAndItsDispatchWaitEndsWithCancelled) {
  Cluster c;
  make_master_repo(c.master());
  c.start_dispatcher();
  c.start_runner();  // the sandbox on, as by default
  ASSERT_TRUE(c.wait_runners(1));
  // The test: a shell with a subshell, each with sleepers in the background, and a
  // sleeper in the foreground. They are told apart from every other process by the
  // length of their sleep, made of this process's id.
  const std::string marker = "sleep 3600.0" + std::to_string(::getpid()) + "3";
  std::string commit = commit_file(c.master(), ".ci/run",
                                   "#!/bin/sh\n" + marker + " &\n" + marker + " &\n( " + marker +
                                       " & " + marker + " ) &\n" + marker + "\n",
                                   "a test that never ends");

  auto waiting = std::async(std::launch::async, [&] {
    return cictl(c, {"dispatch", commit, "--branch", "master", "--wait"});
  });
  ASSERT_TRUE(wait_until([&] { return processes_starting(marker).size() == 5; }))
      << c.runner(0).log();
  JobRow job = job_of(c, commit);
  ASSERT_EQ(job.state, "running");

  const auto asked = std::chrono::steady_clock::now();
  auto cancelled = cictl(c, {"cancel", std::to_string(job.id)});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.output;
  EXPECT_EQ(cancelled.output, "job " + std::to_string(job.id) + " cancelled\n");
  // Promised: gone within 1 s. Checked with a deadline of a few seconds (the machine
  // is shared); the time it took is in the message.
  bool gone = wait_until([&] { return processes_starting(marker).empty(); }, 5000ms);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - asked);
  EXPECT_TRUE(gone) << processes_starting(marker).size() << " of the test's processes still run "
                    << took.count() << " ms after the cancel (promised: within 1 s)\n"
                    << c.runner(0).log();
  EXPECT_TRUE(took < 5000ms) << "the test's processes took " << took.count()
                             << " ms to go after the cancel (promised: within 1 s)";

  auto waited = waiting.get();
  EXPECT_EQ(waited.exit_code, 3) << waited.output;
  EXPECT_NE(waited.output.find("job " + std::to_string(job.id) + " cancelled"), std::string::npos)
      << waited.output;
  ASSERT_TRUE(c.wait_result(commit)) << c.dispatcher().log();
  EXPECT_EQ(header_field(c.result(commit), "status"), "cancelled") << c.result(commit);
  // The runner is free for the next job.
  EXPECT_TRUE(wait_until([&] { return c.status_value("runners-idle") == 1; })) << c.runner(0).log();
}

TEST(Cancel, AJobCancelledWhileItWaitsForABusyRunnerNeverRuns) {
  Cluster c;
  std::string first = make_master_repo(c.master());
  c.start_dispatcher();
  std::string gate = c.shared_dir("gate");
  c.start_runner({"--test-command",
                  "touch " + gate + "/ran.$CI_COMMIT; while [ ! -e " + gate +
                      "/release ]; do sleep 0.02; done",
                  "--sandbox-share", gate});
  ASSERT_TRUE(c.wait_runners(1));
  std::string second = commit_file(c.master(), "second", "2");
  std::string third = commit_file(c.master(), "third", "3");

  ASSERT_EQ(cictl(c, {"dispatch", first, "--branch", "master"}).exit_code, 0);
  ASSERT_TRUE(wait_until([&] { return file_exists(gate + "/ran." + first); }));
  ASSERT_EQ(cictl(c, {"dispatch", second, "--branch", "master"}).exit_code, 0);
  JobRow queued = job_of(c, second);
  ASSERT_EQ(queued.state, "queued");
  auto cancelled = cictl(c, {"cancel", std::to_string(queued.id)});
  EXPECT_EQ(cancelled.exit_code, 0) << cancelled.output;
  // Finished at once: the cancel is answered once it is recorded.
  JobRow after = job_of(c, second);
  EXPECT_EQ(after.state, "finished");
  EXPECT_EQ(after.status, TestStatus::Cancelled);
  ASSERT_TRUE(c.wait_result(second)) << c.dispatcher().log();
  EXPECT_EQ(header_field(c.result(second), "status"), "cancelled");

  // The runner frees up: the job queued after the cancelled one runs next, and the
  // cancelled one was never given to a runner.
  ASSERT_EQ(cictl(c, {"dispatch", third, "--branch", "master"}).exit_code, 0);
  std::ofstream(gate + "/release").flush();
  ASSERT_TRUE(c.wait_result(first)) << c.runner(0).log();
  ASSERT_TRUE(c.wait_result(third)) << c.runner(0).log();
  EXPECT_EQ(header_field(c.result(third), "status"), "passed");
  EXPECT_FALSE(file_exists(gate + "/ran." + second));
  EXPECT_EQ(job_of(c, second).attempt, 0u);
  EXPECT_EQ(job_of(c, second).status, TestStatus::Cancelled);
  EXPECT_EQ(c.status_value("jobs-cancelled"), 1);
}

}  // namespace
}  // namespace ci::test
