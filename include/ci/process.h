// Running processes: a test command in its own process group with a time limit and a
// capped capture of its combined output, and long-lived child processes (daemons in
// tests and scripts).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "ci/fd.h"
#include "ci/result.h"

namespace ci {

// Lets another thread stop a running command (graceful shutdown). Thread-safe.
class CancelToken {
 public:
  CancelToken();
  ~CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;
  void cancel();
  bool cancelled() const { return cancelled_.load(); }
  int fd() const { return fd_.get(); }  // readable once cancelled

 private:
  UniqueFd fd_;
  std::atomic<bool> cancelled_{false};
};

struct CommandSpec {
  std::vector<std::string> argv;               // argv[0] is looked up in PATH
  std::string cwd;                             // "" for the current folder
  std::vector<std::string> env;                // "NAME=value"; the whole environment
  std::chrono::milliseconds timeout{0};        // 0: none
  size_t output_cap = 4u << 20;                // bytes kept: the first half and the last half
  std::chrono::milliseconds kill_grace{2000};  // SIGTERM, then SIGKILL after this
  // With a guard, a small process (the program ci-test-guard) leads the command's group
  // and waits for it; if the caller dies, even by SIGKILL, the guard kills the whole
  // group, so nothing the command started survives the caller. The guard ends as the
  // command did (same exit code or signal), and argv[0] is looked up in the PATH of
  // `env`.
  //
  // Without a guard the command leads its group itself, but nothing kills it if the
  // caller dies: that is for short commands whose caller waits for them (tools in
  // tests and scripts), never for a repository's tests. argv[0] is looked up in the
  // caller's PATH.
  bool guard = false;
  // The guard's executable; "" for default_guard_program().
  std::string guard_program;
  // With a guard: a cgroup (v2) folder the guard moves into before it starts the
  // command, so that everything the command starts is in it; "" for none. Whenever the
  // group is killed with SIGKILL (the command ended, timed out or was cancelled), so is
  // everything in the cgroup, processes that left the group included.
  std::string cgroup;
  // With a guard and a caller running as root: the user and group the command runs as
  // (the guard drops to them, with no supplementary groups, before starting it).
  bool run_as_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  // Called on the calling thread once the command's process group exists, with its id.
  std::function<void(pid_t group)> on_started;
  // Called on the calling thread with each piece of output as it is read from the pipe,
  // before the cap applies: a live copy of the whole stream, in order.
  std::function<void(std::string_view chunk)> on_output;
};

struct CommandResult {
  int exit_code = -1;   // when the process exited
  int term_signal = 0;  // when a signal ended it
  bool timed_out = false;
  bool cancelled = false;
  std::string output;         // stdout and stderr, interleaved, cut in the middle if over cap
  uint64_t output_bytes = 0;  // bytes the command printed in all
  std::chrono::milliseconds duration{0};
};

// Runs the command in a new process group (with a guard: a new session, with no
// controlling terminal) with stdin from /dev/null, stdout and
// stderr captured and no other file open, no signal blocked and SIGPIPE at its
// default. When the command's main process ends, times out or is cancelled, the whole
// group is killed, so nothing it started outlives it.
//
// The command (or its guard) is started with posix_spawn: the caller, however large
// and however many threads it has, is not copied. An error when it cannot be started:
// no guard program, no working folder, or, without a guard, no such program (under a
// guard, a program that cannot be executed ends the command with exit code 127 and a
// line on its stderr saying why).
Result<CommandResult> run_command(const CommandSpec& spec, const CancelToken* cancel = nullptr);

// ci-test-guard in the folder of the running executable (ci-runner's, where it is
// built and installed).
const std::string& default_guard_program();

// Keeps the first half and the last half of a command's output within `cap` bytes,
// counting what was cut from the middle. The first half (the head) grows as output
// arrives; the last half is a ring of exactly cap - cap / 2 bytes, made only once the
// head is full. The ring lives in the same string as the head, after room for the
// note on the cut, so that finish() puts the output together in place: the memory it
// takes stays near `cap` however much the command prints.
class CappedOutput {
 public:
  explicit CappedOutput(size_t cap);
  void append(const char* data, size_t n);
  uint64_t total() const { return total_; }  // bytes appended in all
  // The head, then "\n[... N bytes of output cut here ...]\n" if anything was cut,
  // then the tail. Leaves the object empty.
  std::string finish();

 private:
  size_t head_cap_, tail_cap_;
  // The head; once it is full, also the room for the note and the tail's ring.
  std::string buf_;
  size_t ring_pos_ = 0;  // where the next tail byte goes, from the ring's start
  size_t ring_len_ = 0;  // tail bytes held, at most tail_cap_
  uint64_t total_ = 0;
};

// The current environment as "NAME=value" strings.
std::vector<std::string> current_environment();

// A child process that runs until stopped: stdout and stderr go to a file.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();  // kills (SIGKILL) and reaps a child still running
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;

  static Result<ChildProcess> spawn(const std::vector<std::string>& argv,
                                    const std::string& output_file,
                                    const std::vector<std::string>& env = {});
  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for the child to end; returns its wait status, or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL if it has not ended within `grace`.
  int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

 private:
  pid_t pid_ = -1;
  int status_ = -1;
};

}  // namespace ci
