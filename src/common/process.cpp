// run_command in named steps: the guard program found, the pipes opened, the child's
// set-up (descriptors, process group, signals), the spawn, then the watch of the
// command until it and its output end. CappedOutput is in capped_output.cpp,
// ChildProcess in child_process.cpp, what they share to spawn in spawn.h.
//
// A command's timeout, kill grace and duration are on real time: they bound a real
// process.
#include "ci/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ci/fd.h"
#include "spawn.h"

extern char** environ;

namespace ci {

using SteadyClock = std::chrono::steady_clock;
using spawn::errno_text;
using std::chrono::milliseconds;

CancelToken::CancelToken() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
CancelToken::~CancelToken() = default;
void CancelToken::cancel() {
  cancelled_ = true;
  uint64_t one = 1;
  if (fd_.valid()) (void)!::write(fd_.get(), &one, sizeof one);
}

std::vector<std::string> current_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
  return out;
}

const std::string& default_guard_program() {
  static const std::string path = [] {
    std::error_code ec;
    std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return std::string("ci-test-guard");
    return (self.parent_path() / "ci-test-guard").string();
  }();
  return path;
}

namespace {

// The guard's executable, absolute (posix_spawn would look for a relative name in the
// command's working folder) and checked runnable.
Result<std::string> find_guard(const CommandSpec& spec) {
  std::string program = spec.guard_program.empty() ? default_guard_program() : spec.guard_program;
  if (program.front() != '/') {
    std::error_code ec;
    program = std::filesystem::absolute(program, ec).string();
  }
  if (::access(program.c_str(), X_OK) != 0) {
    return make_error("the test guard " + program + " cannot be run (" + errno_text(errno) +
                      "): ci-test-guard belongs in the folder of the executable that runs tests");
  }
  return program;
}

// The command's output pipe and, with a guard, the guard's lifeline: a pipe this
// process never writes to and holds open while the command runs. Every end is
// close-on-exec, so that no other child of this process keeps one open; the ends the
// child gets are 10 or above (spawn::keep_high).
struct CommandPipes {
  UniqueFd output;        // the command's stdout and stderr, read here
  UniqueFd output_child;  // its write end, the child's 1 and 2
  UniqueFd alive_child;   // the lifeline's read end, the guard's 3
  UniqueFd alive;         // the lifeline's write end, held here
};

Result<CommandPipes> open_pipes(bool guard) {
  auto pipe_error = [] { return make_error(std::string("pipe: ") + std::strerror(errno)); };
  CommandPipes pipes;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return pipe_error();
  pipes.output.reset(fds[0]);
  pipes.output_child = spawn::keep_high(UniqueFd(fds[1]));
  if (!pipes.output_child.valid()) return pipe_error();
  if (!guard) return pipes;
  if (::pipe2(fds, O_CLOEXEC) != 0) return pipe_error();
  pipes.alive.reset(fds[1]);
  pipes.alive_child = spawn::keep_high(UniqueFd(fds[0]));
  if (!pipes.alive_child.valid()) return pipe_error();
  return pipes;
}

// The child: stdin from /dev/null, stdout and stderr into the pipe, the lifeline on 3
// (with a guard), nothing else open; its own process group; in `cwd`; SIGPIPE at its
// default (a daemon ignores it, and an ignored signal survives exec); the guard with
// every signal blocked (a SIGTERM for the group is for the command), the command with
// none. 0, or posix_spawn's error number.
int set_up_child(const CommandSpec& spec, const CommandPipes& pipes, spawn::SpawnSetup& setup) {
  posix_spawn_file_actions_t* actions = setup.actions();
  int out = pipes.output_child.get();
  int fa = ::posix_spawn_file_actions_addopen(actions, 0, "/dev/null", O_RDONLY, 0);
  if (fa == 0) fa = ::posix_spawn_file_actions_adddup2(actions, out, 1);
  if (fa == 0) fa = ::posix_spawn_file_actions_adddup2(actions, out, 2);
  if (fa == 0 && spec.guard)
    fa = ::posix_spawn_file_actions_adddup2(actions, pipes.alive_child.get(), 3);
  if (fa == 0) fa = ::posix_spawn_file_actions_addclosefrom_np(actions, spec.guard ? 4 : 3);
  if (fa == 0 && !spec.cwd.empty())
    fa = ::posix_spawn_file_actions_addchdir_np(actions, spec.cwd.c_str());
  posix_spawnattr_t* attr = setup.attr();
  sigset_t mask, defaults;
  if (spec.guard) {
    sigfillset(&mask);
  } else {
    sigemptyset(&mask);
  }
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  if (fa == 0) fa = ::posix_spawnattr_setpgroup(attr, 0);
  if (fa == 0) fa = ::posix_spawnattr_setsigmask(attr, &mask);
  if (fa == 0) fa = ::posix_spawnattr_setsigdefault(attr, &defaults);
  if (fa == 0) {
    // A guard leads a session of its own: no controlling terminal a test could push
    // input into, and its session is its process group.
    short group_flag = spec.guard ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP;
    fa = ::posix_spawnattr_setflags(attr,
                                    group_flag | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  return fa;
}

// The guard's command line: its options, this process's id, then the command.
std::vector<std::string> guard_argv(const CommandSpec& spec, const std::string& guard_program) {
  std::vector<std::string> argv{guard_program};
  if (!spec.cgroup.empty()) argv.insert(argv.end(), {"--cgroup", spec.cgroup});
  if (spec.run_as_user)
    argv.insert(argv.end(), {"--user", std::to_string(spec.uid), std::to_string(spec.gid)});
  argv.push_back(std::to_string(::getpid()));
  argv.insert(argv.end(), spec.argv.begin(), spec.argv.end());
  return argv;
}

// Starts the command (or its guard). posix_spawn returns once the child has run exec
// (or failed to): the process group exists from here on.
Result<pid_t> start_child(const CommandSpec& spec, const std::string& guard_program,
                          spawn::SpawnSetup& setup) {
  std::vector<std::string> with_guard;
  if (spec.guard) with_guard = guard_argv(spec, guard_program);
  std::vector<char*> argv = spawn::c_strings(spec.guard ? with_guard : spec.argv);
  std::vector<char*> envp = spawn::c_strings(spec.env);
  pid_t pid = -1;
  int spawned = spec.guard ? ::posix_spawn(&pid, guard_program.c_str(), setup.actions(),
                                           setup.attr(), argv.data(), envp.data())
                           : ::posix_spawnp(&pid, argv[0], setup.actions(), setup.attr(),
                                            argv.data(), envp.data());
  if (spawned == 0) return pid;
  if (!spec.cwd.empty() && ::access(spec.cwd.c_str(), X_OK) != 0)
    return make_error("cannot enter the working folder " + spec.cwd + ": " + errno_text(errno));
  return make_error("cannot start " + std::string(argv[0]) + ": " + errno_text(spawned));
}

// Watches a started command to its end: reads its output, enforces its timeout and
// cancellation (SIGTERM, then SIGKILL after the grace), and once its main process has
// ended kills what is left of its group and drains the pipe.
class CommandWatch {
 public:
  CommandWatch(const CommandSpec& spec, const CancelToken* cancel, pid_t pid, UniqueFd output,
               SteadyClock::time_point start)
      : spec_(spec),
        cancel_(cancel),
        pid_(pid),
        pid_fd_(spawn::pidfd_open(pid)),
        out_fd_(std::move(output)),
        output_(spec.output_cap),
        deadline_(spec.timeout.count() > 0 ? start + spec.timeout : SteadyClock::time_point::max()),
        cgroup_kill_(spec.cgroup.empty() ? "" : spec.cgroup + "/cgroup.kill") {
    ::fcntl(out_fd_.get(), F_SETFL, O_NONBLOCK);
  }

  // Runs to the end; fills in `result` but for its duration.
  void run(CommandResult& result) {
    while (!exited_ || pipe_open_) {
      auto now = SteadyClock::now();
      enforce_limits(now, result);
      if (exited_ && now >= drain_deadline_) break;
      if (!wait_and_read(poll_timeout(now))) break;
      check_exit();
    }
    if (!exited_) {
      kill_group(SIGKILL);
      ::waitpid(pid_, &wstatus_, 0);
    }
    if (WIFEXITED(wstatus_)) result.exit_code = WEXITSTATUS(wstatus_);
    if (WIFSIGNALED(wstatus_)) result.term_signal = WTERMSIG(wstatus_);
    result.output_bytes = output_.total();
    result.output = output_.finish();
  }

 private:
  // SIGKILL also ends, through its cgroup, what the command started outside its group.
  void kill_group(int sig) {
    ::kill(-pid_, sig);
    if (sig != SIGKILL || cgroup_kill_.empty()) return;
    UniqueFd fd(::open(cgroup_kill_.c_str(), O_WRONLY | O_CLOEXEC));
    if (fd.valid()) (void)!::write(fd.get(), "1", 1);
  }

  void terminate(SteadyClock::time_point now) {
    kill_group(SIGTERM);
    term_sent_ = true;
    kill_at_ = now + spec_.kill_grace;
  }

  void enforce_limits(SteadyClock::time_point now, CommandResult& result) {
    if (!exited_ && !term_sent_ && now >= deadline_) {
      result.timed_out = true;
      terminate(now);
    }
    if (!exited_ && !term_sent_ && cancel_ && cancel_->cancelled()) {
      result.cancelled = true;
      terminate(now);
    }
    if (term_sent_ && !exited_ && now >= kill_at_) kill_group(SIGKILL);
  }

  // Milliseconds until the next limit (-1: none), for poll.
  int poll_timeout(SteadyClock::time_point now) const {
    SteadyClock::time_point wake = SteadyClock::time_point::max();
    if (!term_sent_) wake = deadline_;
    if (term_sent_ && !exited_) wake = kill_at_;
    if (exited_) wake = drain_deadline_;
    int timeout_ms = -1;
    if (wake != SteadyClock::time_point::max()) {
      auto left = std::chrono::duration_cast<milliseconds>(wake - now).count();
      timeout_ms = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(left + 1, 1 << 30)));
    }
    if (!pid_fd_.valid() && !exited_ && timeout_ms < 0) timeout_ms = 50;  // no pidfd: poll for exit
    return timeout_ms;
  }

  // Waits for output, the main process's end or a cancellation, at most `timeout_ms`,
  // and reads what output came. False when poll fails.
  bool wait_and_read(int timeout_ms) {
    struct pollfd fds[3];
    int nfds = 0;
    int out_i = -1, pid_i = -1;
    if (pipe_open_) {
      fds[nfds] = {out_fd_.get(), POLLIN, 0};
      out_i = nfds++;
    }
    if (!exited_ && pid_fd_.valid()) {
      fds[nfds] = {pid_fd_.get(), POLLIN, 0};
      pid_i = nfds++;
    }
    if (!exited_ && !term_sent_ && cancel_ && cancel_->fd() >= 0)
      fds[nfds++] = {cancel_->fd(), POLLIN, 0};
    int n = ::poll(fds, nfds, timeout_ms);
    if (n < 0 && errno != EINTR) return false;
    if (out_i >= 0 && (fds[out_i].revents & (POLLIN | POLLHUP | POLLERR))) read_output();
    pid_ready_ = pid_i >= 0 && (fds[pid_i].revents & POLLIN);
    return true;
  }

  void read_output() {
    while (true) {
      ssize_t r = ::read(out_fd_.get(), buf_, sizeof buf_);
      if (r > 0) {
        output_.append(buf_, static_cast<size_t>(r));
        if (spec_.on_output) spec_.on_output(std::string_view(buf_, static_cast<size_t>(r)));
        continue;
      }
      if (r == 0) pipe_open_ = false;
      return;  // EAGAIN or EOF
    }
  }

  // Once the main process has ended: the rest of its group is killed, and the pipe is
  // drained for at most a while (a grandchild may hold it open).
  void check_exit() {
    if (exited_ || (pid_fd_.valid() && !pid_ready_)) return;
    if (::waitpid(pid_, &wstatus_, WNOHANG) != pid_) return;
    exited_ = true;
    kill_group(SIGKILL);
    drain_deadline_ = SteadyClock::now() + milliseconds(2000);
  }

  const CommandSpec& spec_;
  const CancelToken* cancel_;
  const pid_t pid_;
  const UniqueFd pid_fd_;
  const UniqueFd out_fd_;
  CappedOutput output_;
  const SteadyClock::time_point deadline_;
  const std::string cgroup_kill_;
  bool exited_ = false;
  int wstatus_ = 0;
  bool pipe_open_ = true;
  bool pid_ready_ = false;
  bool term_sent_ = false;
  SteadyClock::time_point kill_at_{};
  SteadyClock::time_point drain_deadline_ = SteadyClock::time_point::max();
  char buf_[65536];
};

}  // namespace

Result<CommandResult> run_command(const CommandSpec& spec, const CancelToken* cancel) {
  if (spec.argv.empty()) return make_error("empty command");
  std::string guard_program;
  if (spec.guard) {
    auto found = find_guard(spec);
    if (!found) return Error{found.error()};
    guard_program = std::move(*found);
  }
  spawn::SpawnSetup setup;
  if (!setup.ok()) return make_error("posix_spawn: cannot set up the attributes");
  auto pipes = open_pipes(spec.guard);
  if (!pipes) return Error{pipes.error()};
  if (int fa = set_up_child(spec, *pipes, setup); fa != 0)
    return make_error("posix_spawn: " + errno_text(fa));

  auto start = SteadyClock::now();
  auto pid = start_child(spec, guard_program, setup);
  if (!pid) return Error{pid.error()};
  // The child's ends are the child's alone now; the lifeline's write end stays open
  // here until the command is over.
  pipes->output_child.reset();
  pipes->alive_child.reset();
  if (spec.on_started) spec.on_started(*pid);

  CommandResult result;
  CommandWatch(spec, cancel, *pid, std::move(pipes->output), start).run(result);
  result.duration = std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
  return result;
}

}  // namespace ci
