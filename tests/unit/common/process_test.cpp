// run_command on real processes: output capture and its cap, timeouts, cancellation, the
// guard and its process group, descriptors. One file past the usual ~400 lines: every
// test here starts real children through the same few helpers, and the cases are the
// one contract of run_command read side by side.
#include "ci/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ci/validate.h"
#include "test_support.h"

namespace ci {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

// A process that has ended (a zombie too) or never was.
bool process_gone(pid_t pid) {
  std::string stat = test::read_text("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return true;
  std::istringstream fields(stat.substr(close + 1));
  char state = 0;
  fields >> state;
  return state == 'Z';
}

pid_t process_group_of(pid_t pid) {
  std::string stat = test::read_text("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 1));
  char state = 0;
  pid_t parent = 0, group = 0;
  fields >> state >> parent >> group;
  return group;
}

pid_t read_pid(const std::string& path) {
  std::string text = test::read_text(path);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return static_cast<pid_t>(parse_u64(text, INT32_MAX).value_or(0));
}

pid_t wait_for_pid(const std::string& path) {
  pid_t pid = 0;
  test::wait_until([&] { return (pid = read_pid(path)) > 0; }, 20s);
  return pid;
}

// Every case runs with and without a guard: both must behave the same where the
// header says nothing else.
class RunCommandTest : public ::testing::TestWithParam<bool> {
 protected:
  CommandSpec shell(const std::string& script) {
    CommandSpec spec;
    spec.argv = {"/bin/sh", "-c", script};
    spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
    spec.timeout = 60s;
    spec.kill_grace = 500ms;
    spec.guard = GetParam();
    return spec;
  }

  CommandResult run(const CommandSpec& spec, const CancelToken* cancel = nullptr) {
    auto ran = run_command(spec, cancel);
    EXPECT_TRUE(ran.ok()) << ran.error();
    return ran.ok() ? std::move(ran.value()) : CommandResult{};
  }

  TempDir dir;
};

INSTANTIATE_TEST_SUITE_P(GuardOrNot, RunCommandTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Guarded" : "Unguarded";
                         });

TEST_P(RunCommandTest, ReportsTheExitCodeAndTheOutput) {
  auto r = run(shell("echo out; echo err >&2; echo more; exit 3"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.output, "out\nerr\nmore\n");
  EXPECT_EQ(r.output_bytes, 13u);
}

TEST_P(RunCommandTest, ReportsTheSignalThatEndedTheCommand) {
  auto r = run(shell("echo before; kill -USR1 $$; echo after"));
  EXPECT_EQ(r.term_signal, SIGUSR1);
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.output, "before\n");
}

TEST_P(RunCommandTest, RunsInTheWorkingFolderWithOnlyTheGivenEnvironment) {
  ASSERT_EQ(::setenv("CI_PROCESS_TEST_SECRET", "hunter2", 1), 0);
  auto spec = shell("pwd; echo \"$GIVEN ${CI_PROCESS_TEST_SECRET-unset}\"");
  spec.cwd = dir.path();
  spec.env.push_back("GIVEN=yes");
  auto r = run(spec);
  ::unsetenv("CI_PROCESS_TEST_SECRET");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, std::filesystem::canonical(dir.path()).string() + "\nyes unset\n");
}

TEST_P(RunCommandTest, StdinIsEmptyAndNoOtherFileIsOpen) {
  // The caller has a file open that is not close-on-exec: it must not reach the command.
  int leak = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leak, 0);
  auto r = run(shell("cat; ls /proc/$$/fd"));
  ::close(leak);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "0\n1\n2\n");
}

TEST_P(RunCommandTest, TheCommandStartsWithNoSignalBlockedAndSigpipeAtItsDefault) {
  // A daemon blocks its stop signals in every thread and ignores SIGPIPE.
  sigset_t stop, before;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &stop, &before), 0);
  struct sigaction ignore {};
  struct sigaction previous {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &previous), 0);
  auto blocked = run(shell("exec grep SigBlk /proc/self/status"));
  auto piped = run(shell("kill -PIPE $$; echo survived"));
  ::sigaction(SIGPIPE, &previous, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  EXPECT_EQ(blocked.output, "SigBlk:\t0000000000000000\n");
  EXPECT_EQ(piped.term_signal, SIGPIPE) << piped.output;
}

TEST_P(RunCommandTest, OnStartedGetsTheProcessGroupOfTheCommand) {
  pid_t group = 0;
  std::string shell_pid = dir / "shell";
  auto spec = shell("echo $$ > '" + shell_pid + "'; sleep 300");
  spec.timeout = 60s;
  CancelToken cancel;
  pid_t in_group = 0;
  spec.on_started = [&](pid_t g) {
    group = g;
    // The shell writes its pid at once; the group is checked while it is alive.
    pid_t shell = wait_for_pid(shell_pid);
    in_group = process_group_of(shell);
    if (GetParam()) {
      EXPECT_NE(shell, g) << "the guard leads the group";
    } else {
      EXPECT_EQ(shell, g) << "the command leads the group";
    }
    cancel.cancel();
  };
  auto r = run(spec, &cancel);
  EXPECT_TRUE(r.cancelled);
  EXPECT_GT(group, 0);
  EXPECT_EQ(in_group, group);
  EXPECT_NE(group, ::getpgrp());
}

TEST_P(RunCommandTest, ATimeoutKillsTheWholeGroup) {
  std::string child = dir / "child";
  auto spec = shell("echo started; sleep 300 & echo $! > '" + child + "'; wait");
  spec.timeout = 300ms;
  // The timeout runs from the start: on a busy machine it could end the shell before it
  // has printed or started its child. Held back until the child is there, it ends a
  // command that has done both.
  spec.on_started = [&](pid_t) { wait_for_pid(child); };
  auto r = run(spec);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.output, "started\n");
  pid_t sleeper = read_pid(child);
  ASSERT_GT(sleeper, 0);
  EXPECT_TRUE(test::wait_until([&] { return process_gone(sleeper); }, 10s));
}

TEST_P(RunCommandTest, ACancelledCommandIsKilledAndMarkedCancelled) {
  CancelToken cancel;
  cancel.cancel();
  auto r = run(shell("sleep 300"), &cancel);
  EXPECT_TRUE(r.cancelled);
  EXPECT_FALSE(r.timed_out);
  // SIGTERM, or SIGKILL after the grace period when the SIGTERM for the group came
  // before the guard had started the command.
  EXPECT_TRUE(r.term_signal == SIGTERM || r.term_signal == SIGKILL) << r.term_signal;
}

TEST_P(RunCommandTest, NothingTheCommandStartedOutlivesIt) {
  std::string child = dir / "child";
  auto r = run(shell("sleep 300 & echo $! > '" + child + "'; exit 0"));
  EXPECT_EQ(r.exit_code, 0);
  pid_t sleeper = read_pid(child);
  ASSERT_GT(sleeper, 0);
  EXPECT_TRUE(test::wait_until([&] { return process_gone(sleeper); }, 10s));
}

TEST_P(RunCommandTest, OutputOverTheCapKeepsItsHeadAndItsTail) {
  auto spec = shell("echo first; head -c 3000000 /dev/zero | tr '\\000' x; echo; echo last");
  spec.output_cap = 1000;
  auto r = run(spec);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output_bytes, 3000000u + 12u);
  std::string head = "first\n" + std::string(494, 'x');
  std::string tail = std::string(494, 'x') + "\nlast\n";
  EXPECT_EQ(r.output, head + "\n[... 2999012 bytes of output cut here ...]\n" + tail);
}

TEST_P(RunCommandTest, AMissingWorkingFolderIsAnErrorNamingIt) {
  auto spec = shell("true");
  spec.cwd = dir / "missing";
  auto ran = run_command(spec);
  ASSERT_FALSE(ran.ok());
  EXPECT_NE(ran.error().find(dir / "missing"), std::string::npos) << ran.error();
}

// The descriptors this process has open.
size_t open_descriptors() {
  std::error_code ec;
  auto entries = std::filesystem::directory_iterator("/proc/self/fd", ec);
  return static_cast<size_t>(std::distance(entries, std::filesystem::directory_iterator()));
}

TEST_P(RunCommandTest, LeavesNoDescriptorOpenWhetherItRanOrFailedToStart) {
  size_t before = open_descriptors();
  {
    CancelToken cancel;
    run(shell("echo out; echo err >&2"), &cancel);
  }
  auto timed_out = shell("sleep 60");
  timed_out.timeout = 50ms;
  EXPECT_TRUE(run(timed_out).timed_out);
  auto no_folder = shell("true");
  no_folder.cwd = dir / "missing";
  EXPECT_FALSE(run_command(no_folder).ok());
  auto no_program = shell("true");
  no_program.argv = {"ci-no-such-program"};
  (void)run_command(no_program);  // an error, or exit code 127 under a guard
  EXPECT_EQ(open_descriptors(), before);
}

TEST(RunCommand, WithoutAGuardAProgramThatCannotStartIsAnError) {
  CommandSpec spec;
  spec.argv = {"ci-no-such-program"};
  auto ran = run_command(spec);
  ASSERT_FALSE(ran.ok());
  EXPECT_NE(ran.error().find("ci-no-such-program"), std::string::npos) << ran.error();
}

TEST(RunCommand, UnderAGuardAProgramThatCannotStartExitsWith127AndSaysWhy) {
  CommandSpec spec;
  spec.argv = {"ci-no-such-program", "x"};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.guard = true;
  auto ran = run_command(spec);
  ASSERT_TRUE(ran.ok()) << ran.error();
  EXPECT_EQ(ran->exit_code, 127);
  EXPECT_EQ(ran->output,
            "cannot execute the test command 'ci-no-such-program': No such file or directory\n");
}

TEST(RunCommand, UnderAGuardTheProgramIsLookedUpInTheCommandsPath) {
  TempDir dir;
  std::string tool = dir / "ci-only-here";
  { std::ofstream(tool) << "#!/bin/sh\necho found me\n"; }
  ASSERT_EQ(::chmod(tool.c_str(), 0755), 0);
  CommandSpec spec;
  spec.argv = {"ci-only-here"};
  spec.env = {"PATH=" + dir.path() + ":/usr/bin:/bin"};
  spec.guard = true;
  auto ran = run_command(spec);
  ASSERT_TRUE(ran.ok()) << ran.error();
  EXPECT_EQ(ran->exit_code, 0);
  EXPECT_EQ(ran->output, "found me\n");
}

TEST(RunCommand, AMissingGuardProgramIsAnErrorNamingIt) {
  TempDir dir;
  CommandSpec spec;
  spec.argv = {"/bin/true"};
  spec.guard = true;
  spec.guard_program = dir / "ci-test-guard";
  auto ran = run_command(spec);
  ASSERT_FALSE(ran.ok());
  EXPECT_NE(ran.error().find(dir / "ci-test-guard"), std::string::npos) << ran.error();
}

TEST(RunCommand, TheGuardIsFoundBesideTheRunningExecutable) {
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  EXPECT_EQ(default_guard_program(), (self.parent_path() / "ci-test-guard").string());
  EXPECT_EQ(::access(default_guard_program().c_str(), X_OK), 0)
      << default_guard_program() << ": build the ci-test-guard target";
}

// The caller of run_command killed by SIGKILL mid-command, as a runner may be: in a
// forked child of this test, which runs the command and never returns.
class KilledCallerTest : public ::testing::Test {
 protected:
  // Starts a caller running `script` under a guard, and returns its pid once the
  // script has written its own pid to `dir/shell`.
  pid_t start_caller(const std::string& script) {
    pid_t caller = ::fork();
    if (caller == 0) {
      // This process has one thread (a forked copy of the test's); run_command is safe.
      CommandSpec spec;
      spec.argv = {"/bin/sh", "-c", script};
      spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
      spec.guard = true;
      (void)run_command(spec);
      ::_exit(0);
    }
    return caller;
  }

  void TearDown() override {
    for (pid_t pid : {read_pid(dir / "shell"), read_pid(dir / "child")}) {
      if (pid > 0) ::kill(pid, SIGKILL);
    }
  }

  TempDir dir;
};

TEST_F(KilledCallerTest, TheGuardKillsTheWholeGroup) {
  pid_t caller = start_caller("echo $$ > '" + (dir / "shell") + "'; sleep 300 & echo $! > '" +
                              (dir / "child") + "'; wait");
  ASSERT_GT(caller, 0);
  pid_t shell = wait_for_pid(dir / "shell");
  pid_t child = wait_for_pid(dir / "child");
  ASSERT_GT(shell, 0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::kill(caller, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(caller, &status, 0), caller);
  EXPECT_TRUE(test::wait_until([&] { return process_gone(shell) && process_gone(child); }, 10s));
}

TEST_F(KilledCallerTest, ACommandThatLeftTheGroupDiesWithTheGuard) {
  // setsid: a session and a group of its own, out of reach of the guard's kill of its
  // group; the parent-death signal still reaches it.
  pid_t caller = start_caller("echo $$ > '" + (dir / "shell") + "'; exec setsid sleep 300");
  ASSERT_GT(caller, 0);
  pid_t command = wait_for_pid(dir / "shell");
  ASSERT_GT(command, 0);
  ASSERT_TRUE(test::wait_until([&] { return process_group_of(command) == command; }, 10s));
  ASSERT_EQ(::kill(caller, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(caller, &status, 0), caller);
  EXPECT_TRUE(test::wait_until([&] { return process_gone(command); }, 10s));
}

// CappedOutput against the obvious model: the first cap / 2 bytes, the note on what
// was cut, the last cap - cap / 2 bytes.
std::string expected_capped(const std::string& all, size_t cap) {
  if (all.size() <= cap) return all;
  size_t head = cap / 2, tail = cap - cap / 2;
  return all.substr(0, head) + "\n[... " + std::to_string(all.size() - cap) +
         " bytes of output cut here ...]\n" + all.substr(all.size() - tail);
}

std::string numbered(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return s;
}

TEST(CappedOutput, ExactlyTheCapIsKeptWhole) {
  CappedOutput out(10);
  out.append("0123456789", 10);
  EXPECT_EQ(out.total(), 10u);
  EXPECT_EQ(out.finish(), "0123456789");
}

TEST(CappedOutput, OneByteOverTheCapCutsOneByteFromTheMiddle) {
  CappedOutput out(10);
  out.append("0123456789", 10);
  out.append("A", 1);
  EXPECT_EQ(out.total(), 11u);
  EXPECT_EQ(out.finish(), "01234\n[... 1 bytes of output cut here ...]\n6789A");
}

TEST(CappedOutput, AnOddCapGivesTheTailTheExtraByte) {
  CappedOutput out(5);
  out.append("abcdefgh", 8);
  EXPECT_EQ(out.finish(), "ab\n[... 3 bytes of output cut here ...]\nfgh");
}

TEST(CappedOutput, TheTailJustFullIsNotCut) {
  CappedOutput out(8);
  out.append("abcd", 4);  // the head
  out.append("ef", 2);
  out.append("gh", 2);  // the tail's last byte: the ring is full and not yet round
  EXPECT_EQ(out.finish(), "abcdefgh");
}

TEST(CappedOutput, ManySmallWritesAcrossTheWrap) {
  for (size_t cap : {2u, 3u, 8u, 16u, 17u, 100u}) {
    std::string all = numbered(1000);
    CappedOutput out(cap);
    size_t at = 0;
    for (size_t k = 1; at < all.size(); k = k % 7 + 1) {
      size_t n = std::min(k, all.size() - at);
      out.append(all.data() + at, n);
      at += n;
    }
    EXPECT_EQ(out.total(), all.size());
    EXPECT_EQ(out.finish(), expected_capped(all, cap)) << "cap " << cap;
  }
}

TEST(CappedOutput, AWriteLongerThanTheTailReplacesIt) {
  std::string all = numbered(200);
  // Starting with the ring at each position in turn.
  for (size_t first = 0; first <= 30; ++first) {
    CappedOutput out(20);
    out.append(all.data(), first);
    out.append(all.data() + first, 150);  // longer than the tail of 10
    out.append(all.data() + first + 150, 3);
    EXPECT_EQ(out.finish(), expected_capped(all.substr(0, first + 153), 20)) << first;
  }
}

TEST(CappedOutput, EveryLengthAroundTheCapAndEveryChunking) {
  const size_t cap = 12;
  for (size_t length = 0; length <= 3 * cap; ++length) {
    for (size_t chunk = 1; chunk <= cap + 2; ++chunk) {
      std::string all = numbered(length);
      CappedOutput out(cap);
      for (size_t at = 0; at < length; at += chunk)
        out.append(all.data() + at, std::min(chunk, length - at));
      ASSERT_EQ(out.finish(), expected_capped(all, cap)) << length << " by " << chunk;
    }
  }
}

TEST(CappedOutput, ACapOfZeroKeepsOnlyTheNote) {
  CappedOutput out(0);
  out.append("abc", 3);
  EXPECT_EQ(out.finish(), "\n[... 3 bytes of output cut here ...]\n");
  CappedOutput none(0);
  EXPECT_EQ(none.finish(), "");
}

TEST(CappedOutput, ALargeOutputKeepsTheCapAndCountsTheRest) {
  const size_t cap = 4u << 20;
  CappedOutput out(cap);
  std::string chunk(65536, 'x');
  for (int i = 0; i < 800; ++i) {  // 50 MiB
    chunk[0] = static_cast<char>('a' + i % 26);
    out.append(chunk.data(), chunk.size());
  }
  std::string kept = out.finish();
  uint64_t total = 800ull * 65536;
  std::string note = "\n[... " + std::to_string(total - cap) + " bytes of output cut here ...]\n";
  ASSERT_EQ(kept.size(), cap + note.size());
  EXPECT_EQ(kept.substr(cap / 2, note.size()), note);
  // The tail is the last 32 chunks, the first of them starting with the letter of 768.
  EXPECT_EQ(kept[cap / 2 + note.size()], static_cast<char>('a' + 768 % 26));
  EXPECT_EQ(kept[kept.size() - 65536], static_cast<char>('a' + 799 % 26));
}

}  // namespace
}  // namespace ci
