// The log of an attempt whose runner the dispatcher took for lost, with real daemons:
// the runner is stopped (SIGSTOP) mid-stream until the dispatcher drops it, then let go
// on. The attempt's log is finished when it is dropped (done on disk), and what the
// runner sends of it afterwards is refused, not appended; its result is still taken.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>

#include "cluster.h"

namespace ci::test {
namespace {

std::string line(int i) { return "line " + std::to_string(i) + " of the log\n"; }

// Prints lines 1 to 4; after line i it waits for `dir`/go.<i>.
std::string printing_command(const std::string& dir) {
  return "i=1; while [ $i -le 4 ]; do echo \"line $i of the log\"; "
         "if [ $i -lt 4 ]; then while [ ! -e " +
         dir + "/go.$i ]; do sleep 0.01; done; fi; i=$((i + 1)); done";
}

struct LogRead {
  std::string bytes;
  bool done = false;
};

std::optional<LogRead> read_log(Cluster& c, JobId job, uint32_t attempt) {
  auto reply = c.ask(LogReadRequest{job, attempt, 0, kMaxLogRead});
  if (!reply || reply->kind != Reply::Kind::Ok || reply->args.size() != 3) return std::nullopt;
  return LogRead{reply->body, reply->args[2] == "1"};
}

// Continues a stopped process however the test ends.
struct Continue {
  Daemon& daemon;
  ~Continue() { ::kill(daemon.pid(), SIGCONT); }
};

TEST(LogEnd, ARunnerTakenForLostHasItsAttemptsLogFinishedAndItsLateChunksRefused) {
  Cluster c;
  std::string commit = make_master_repo(c.master());
  std::string gate = c.shared_dir("gate");
  c.start_dispatcher();
  Daemon& runner =
      c.start_runner({"--test-command", printing_command(gate), "--sandbox-share", gate});
  ASSERT_TRUE(c.wait_runners(1));
  auto dispatched = c.ask(DispatchRequest{commit, "master"});
  ASSERT_TRUE(dispatched && dispatched->kind == Reply::Kind::Ok);
  const JobId job = std::stoull(dispatched->args.at(0));
  ASSERT_TRUE(wait_until([&] {
    auto read = read_log(c, job, 1);
    return read && read->bytes == line(1);
  })) << runner.log();

  // Stopped: it misses its pings, and the dispatcher drops it and requeues the job.
  ASSERT_EQ(::kill(runner.pid(), SIGSTOP), 0);
  Continue later{runner};
  ASSERT_TRUE(wait_until([&] { return c.status_value("runners") == 0; })) << c.dispatcher().log();
  const std::string done = c.path("state/logs/" + std::to_string(job) + "-1.done");
  ASSERT_TRUE(wait_until([&] { return file_exists(done); })) << c.dispatcher().log();
  auto ended = read_log(c, job, 1);
  ASSERT_TRUE(ended);
  EXPECT_TRUE(ended->done);
  EXPECT_EQ(ended->bytes, line(1));

  // Let go on, it prints the rest and sends it: refused, not written.
  for (int i = 1; i <= 3; ++i) std::ofstream(gate + "/go." + std::to_string(i)).flush();
  ASSERT_EQ(::kill(runner.pid(), SIGCONT), 0);
  ASSERT_TRUE(c.wait_result(commit)) << c.dispatcher().log() << runner.log();
  EXPECT_EQ(header_field(c.result(commit), "attempt"), "1");
  ASSERT_TRUE(wait_until([&] { return runner.log_contains("refused its live log"); }))
      << runner.log();
  auto after = read_log(c, job, 1);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->done);
  EXPECT_EQ(after->bytes, line(1));
}

}  // namespace
}  // namespace ci::test
