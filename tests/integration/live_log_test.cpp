// The live log with real daemons: a test that prints line after line, each one let out
// by the test only when it has seen the previous one in the dispatcher's log, read back
// with `logread` while it runs; then the same with the dispatcher killed and started
// again mid-stream, and with the runner killed mid-stream.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <optional>

#include "ci/process.h"
#include "cluster.h"

namespace ci::test {
namespace {

constexpr int kLines = 6;

std::string line(int i) { return "line " + std::to_string(i) + " of the live log\n"; }

// Lines 1 to n, as the test prints them.
std::string lines_to(int n) {
  std::string out;
  for (int i = 1; i <= n; ++i) out += line(i);
  return out;
}

// A test command that prints the lines one by one: after line i it marks
// `dir`/printed.<attempt>.<i> and, but for the last, waits for `dir`/go.<i>.
std::string printing_command(const std::string& dir) {
  return "i=1; while [ $i -le " + std::to_string(kLines) +
         " ]; do echo \"line $i of the live log\"; touch " + dir +
         "/printed.$CI_ATTEMPT.$i; "
         "if [ $i -lt " +
         std::to_string(kLines) + " ]; then while [ ! -e " + dir +
         "/go.$i ]; do sleep 0.01; done; fi; i=$((i + 1)); done";
}

void let_out(const std::string& dir, int after_line) {
  std::ofstream(dir + "/go." + std::to_string(after_line)).flush();
}

struct LogRead {
  uint64_t start = 0, total = 0;
  bool done = false;
  std::string bytes;
};

// The whole log of an attempt (0: the latest) as the dispatcher has it now.
std::optional<LogRead> read_log(Cluster& c, JobId job, uint32_t attempt) {
  auto reply = c.ask(LogReadRequest{job, attempt, 0, kMaxLogRead});
  if (!reply || reply->kind != Reply::Kind::Ok || reply->args.size() != 3) return std::nullopt;
  LogRead read;
  read.start = std::stoull(reply->args[0]);
  read.total = std::stoull(reply->args[1]);
  read.done = reply->args[2] == "1";
  read.bytes = reply->body;
  return read;
}

// Waits until the attempt's log holds exactly lines 1 to n, not yet done; every read
// on the way must be a start of the whole output (never a line out of order, twice or
// cut off past what was printed).
::testing::AssertionResult log_reaches(Cluster& c, JobId job, uint32_t attempt, int n) {
  const std::string full = lines_to(kLines), want = lines_to(n);
  std::string bad;
  bool reached = wait_until([&] {
    auto read = read_log(c, job, attempt);
    if (!read) return false;
    if (read->start != 0 || read->total != read->bytes.size() ||
        full.compare(0, read->bytes.size(), read->bytes) != 0 || read->bytes.size() > want.size())
      bad = read->bytes;
    return !bad.empty() || (read->bytes == want && !read->done);
  });
  if (!bad.empty()) return ::testing::AssertionFailure() << "the log read:\n" << bad;
  if (!reached) {
    auto read = read_log(c, job, attempt);
    return ::testing::AssertionFailure() << "the log never held lines 1 to " << n << "; it holds:\n"
                                         << (read ? read->bytes : "(no answer)");
  }
  return ::testing::AssertionSuccess();
}

// Waits until the attempt's log is marked done, and returns it.
LogRead final_log(Cluster& c, JobId job, uint32_t attempt) {
  std::optional<LogRead> read;
  EXPECT_TRUE(wait_until([&] {
    read = read_log(c, job, attempt);
    return read && read->done;
  })) << "the log of attempt "
      << attempt << " is never done";
  return read.value_or(LogRead{});
}

JobId dispatch(Cluster& c, const std::string& commit) {
  auto reply = c.ask(DispatchRequest{commit, "master"});
  EXPECT_TRUE(reply && reply->kind == Reply::Kind::Ok && reply->args.size() == 1);
  return reply && reply->args.size() == 1 ? std::stoull(reply->args[0]) : 0;
}

size_t count(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t pos = text.find(part); pos != std::string::npos; pos = text.find(part, pos + 1)) ++n;
  return n;
}

class LiveLog : public ::testing::Test {
 protected:
  void SetUp() override {
    commit = make_master_repo(c.master());
    c.start_dispatcher();
    start_runner();
    ASSERT_TRUE(c.wait_runners(1));
  }
  Daemon& start_runner() {
    return c.start_runner({"--test-command", printing_command(gate), "--sandbox-share", gate});
  }

  Cluster c;
  std::string gate = c.shared_dir("gate");
  std::string commit;
};

TEST_F(LiveLog, LinesArriveInOrderWhileTheTestRunsAndTheEndedLogIsTheWholeOutput) {
  JobId job = dispatch(c, commit);
  ASSERT_NE(job, 0u);
  // Followed by cictl from the start: it ends with the attempt, having printed it all.
  auto follow = std::async(std::launch::async, [&] {
    CommandSpec spec;
    spec.argv = {bin("cictl"), "--dispatcher-server", c.server(),
                 "log",        std::to_string(job),   "--follow"};
    spec.env = current_environment();
    spec.timeout = 60000ms;
    return run_command(spec);
  });

  for (int i = 1; i < kLines; ++i) {
    ASSERT_TRUE(log_reaches(c, job, 1, i)) << c.runner(0).log();
    let_out(gate, i);
  }
  ASSERT_TRUE(c.wait_result(commit)) << c.dispatcher().log() << c.runner(0).log();
  LogRead ended = final_log(c, job, 1);
  EXPECT_EQ(ended.start, 0u);
  EXPECT_EQ(ended.bytes, lines_to(kLines));
  EXPECT_EQ(ended.total, lines_to(kLines).size());
  std::string result = c.result(commit);
  EXPECT_EQ(header_field(result, "status"), "passed");
  EXPECT_NE(result.find(lines_to(kLines)), std::string::npos) << result;

  auto followed = follow.get();
  ASSERT_TRUE(followed.ok()) << followed.error();
  EXPECT_EQ(followed->exit_code, 0) << followed->output;
  EXPECT_EQ(followed->output, lines_to(kLines));
}

TEST_F(LiveLog, ADispatcherRestartMidStreamLosesAndDoublesNoLine) {
  JobId job = dispatch(c, commit);
  ASSERT_NE(job, 0u);
  ASSERT_TRUE(log_reaches(c, job, 1, 1)) << c.runner(0).log();
  let_out(gate, 1);
  ASSERT_TRUE(log_reaches(c, job, 1, 2)) << c.runner(0).log();

  // Lines 3 to 5 are printed while the dispatcher is down: the runner holds them.
  Cluster::kill_hard(c.dispatcher());
  for (int i = 2; i <= 4; ++i) let_out(gate, i);
  ASSERT_TRUE(wait_until([&] { return file_exists(gate + "/printed.1.5"); })) << c.runner(0).log();
  c.start_dispatcher();
  ASSERT_TRUE(log_reaches(c, job, 1, 5)) << c.dispatcher().log() << c.runner(0).log();
  let_out(gate, 5);

  ASSERT_TRUE(c.wait_result(commit)) << c.dispatcher().log() << c.runner(0).log();
  LogRead ended = final_log(c, job, 1);
  EXPECT_EQ(ended.start, 0u);
  EXPECT_EQ(ended.bytes, lines_to(kLines));
  // The result is recorded once, for the one attempt, with each line once.
  ASSERT_TRUE(wait_until([&] { return c.status_value("jobs-finished") == 1; }));
  auto jobs = jobs_of(c);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].status, TestStatus::Passed);
  EXPECT_EQ(jobs[0].attempt, 1u);
  EXPECT_EQ(c.result_files(), std::vector<std::string>{commit});
  std::string result = c.result(commit);
  EXPECT_EQ(header_field(result, "attempt"), "1");
  for (int i = 1; i <= kLines; ++i) EXPECT_EQ(count(result, line(i)), 1u) << result;
  EXPECT_FALSE(file_exists(gate + "/printed.2.1"));
}

TEST_F(LiveLog, ARunnerKilledMidStreamLeavesItsAttemptsLogAndTheRetryHasItsOwn) {
  JobId job = dispatch(c, commit);
  ASSERT_NE(job, 0u);
  for (int i = 1; i < 3; ++i) {
    ASSERT_TRUE(log_reaches(c, job, 1, i)) << c.runner(0).log();
    let_out(gate, i);
  }
  ASSERT_TRUE(log_reaches(c, job, 1, 3)) << c.runner(0).log();
  Cluster::kill_hard(c.runner(0));

  // The dispatcher gives up on the attempt when it drops the runner: its log ends
  // where the runner died, done.
  ASSERT_TRUE(wait_until([&] { return c.status_value("runners") == 0; })) << c.dispatcher().log();
  LogRead first = final_log(c, job, 1);
  EXPECT_EQ(first.start, 0u);
  EXPECT_EQ(first.bytes, lines_to(3));
  EXPECT_EQ(first.total, lines_to(3).size());

  // The retry runs through on another runner, its log apart from the first one's.
  for (int i = 1; i < kLines; ++i) let_out(gate, i);
  start_runner();
  ASSERT_TRUE(c.wait_result(commit)) << c.dispatcher().log() << c.runner(1).log();
  EXPECT_EQ(header_field(c.result(commit), "attempt"), "2");
  LogRead second = final_log(c, job, 2);
  EXPECT_EQ(second.start, 0u);
  EXPECT_EQ(second.bytes, lines_to(kLines));
  LogRead latest = final_log(c, job, 0);
  EXPECT_EQ(latest.bytes, lines_to(kLines));
  LogRead first_again = final_log(c, job, 1);
  EXPECT_EQ(first_again.bytes, lines_to(3));
}

}  // namespace
}  // namespace ci::test
