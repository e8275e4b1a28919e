// ci-test-guard: leads a test command's process group, runs the command in it and
// waits for it. run_command (ci/process.h) starts it with posix_spawn as
//
//   ci-test-guard [--cgroup DIR] [--user UID GID] CALLER_PID PROGRAM [ARGUMENT...]
//
// already in a session and process group of its own (with no controlling terminal) and in the
// command's working folder, with the command's environment, every signal blocked (a SIGTERM for the
// group is for the command), SIGPIPE at its default, stdin on /dev/null, stdout and stderr on the
// output pipe, descriptor 3 the read end of a pipe whose only writer is the caller (the lifeline)
// and nothing else open.
//
// The lifeline reaches end of file when the caller dies, however it dies, even by
// SIGKILL: the guard then kills the whole group, itself included. The command gets
// SIGKILL if the guard dies. Otherwise the guard ends as the command did: the same exit
// code, or the same signal. A command that cannot be started ends with 127 and says why
// on stderr.
//
// With --cgroup, the guard first moves itself into that cgroup (v2) folder, so that the
// command and everything it starts are in it. With --user (the caller is root), it then
// drops to that user and group, with no supplementary groups, for good: the command
// never runs as root.
//
// Plain libc and no allocation: it starts for every test, so it must start fast.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

constexpr int kLifeline = 3;
constexpr int kCannotRun = 127;

void write_text(const char* text) { (void)!::write(2, text, strlen(text)); }

// "<what><why>\n" on stderr, why from errno.
void write_error(const char* what) {
  const char* why = strerrordesc_np(errno);  // unlike strerror: no locale, no allocation
  write_text(what);
  write_text(why ? why : "unknown error");
  write_text("\n");
}

bool parse_pid(const char* text, pid_t* pid) {
  if (!text || *text < '0' || *text > '9') return false;
  errno = 0;
  char* end = nullptr;
  long value = strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value <= 0 || value > 0x7fffffffL) return false;
  *pid = static_cast<pid_t>(value);
  return true;
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// Ends this process the way `status` says the command ended.
[[noreturn]] void exit_like(int status) {
  if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
  int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
  struct rlimit no_core = {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);  // the guard's core is of no interest
  ::signal(sig, SIG_DFL);
  ::kill(::getpid(), sig);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, sig);
  ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
  ::_exit(128 + sig);
}

// The command, in the forked child.
[[noreturn]] void exec_command(pid_t guard, char* const* argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != guard) ::_exit(kCannotRun);  // the guard died before the line above
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::execvp(argv[0], argv);  // PATH from the command's environment
  int error = errno;
  write_text("cannot execute the test command '");
  write_text(argv[0]);
  write_text("': ");
  errno = error;
  write_error("");
  ::_exit(kCannotRun);
}

bool parse_id(const char* text, unsigned* id) {
  pid_t value = 0;
  if (text && text[0] == '0' && text[1] == '\0') {
    *id = 0;
    return true;
  }
  if (!parse_pid(text, &value)) return false;
  *id = static_cast<unsigned>(value);
  return true;
}

// Moves this process into the cgroup folder `dir`.
bool join_cgroup(const char* dir) {
  char path[4096];
  size_t n = strlen(dir);
  const char* leaf = "/cgroup.procs";
  if (n + strlen(leaf) + 1 > sizeof path) return false;
  memcpy(path, dir, n);
  memcpy(path + n, leaf, strlen(leaf) + 1);
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char digits[16];
  size_t len = 0;
  for (unsigned pid = static_cast<unsigned>(::getpid()); pid > 0; pid /= 10)
    digits[len++] = static_cast<char>('0' + pid % 10);
  char text[16];
  for (size_t i = 0; i < len; ++i) text[i] = digits[len - 1 - i];
  bool ok = ::write(fd, text, len) == static_cast<ssize_t>(len);
  ::close(fd);
  return ok;
}

// Drops to `uid` and `gid` with no supplementary groups, for good.
bool drop_to(unsigned uid, unsigned gid) {
  if (::setgroups(0, nullptr) != 0) return false;
  if (::setresgid(gid, gid, gid) != 0) return false;
  if (::setresuid(uid, uid, uid) != 0) return false;
  return ::getuid() == uid && ::geteuid() == uid && ::getgid() == gid && ::getegid() == gid;
}

int usage() {
  write_text(
      "usage: ci-test-guard [--cgroup DIR] [--user UID GID] CALLER_PID PROGRAM [ARGUMENT...]\n");
  write_text("(started by ci-runner for each test, with its lifeline on descriptor 3)\n");
  return kCannotRun;
}

}  // namespace

int main(int argc, char** argv) {
  const char* cgroup = nullptr;
  bool as_user = false;
  unsigned uid = 0, gid = 0;
  int arg = 1;
  while (arg < argc && strncmp(argv[arg], "--", 2) == 0) {
    if (strcmp(argv[arg], "--cgroup") == 0 && arg + 1 < argc) {
      cgroup = argv[arg + 1];
      arg += 2;
    } else if (strcmp(argv[arg], "--user") == 0 && arg + 2 < argc &&
               parse_id(argv[arg + 1], &uid) && parse_id(argv[arg + 2], &gid)) {
      as_user = true;
      arg += 3;
    } else {
      return usage();
    }
  }
  pid_t caller = 0;
  if (argc - arg < 2 || !parse_pid(argv[arg], &caller)) return usage();
  // The caller died before this line: its lifeline may already be closed and this
  // process is no longer its child. Nothing has started yet, so nothing is left.
  if (::getppid() != caller) return kCannotRun;
  if (::fcntl(kLifeline, F_SETFD, FD_CLOEXEC) != 0) {
    write_error("ci-test-guard: no lifeline on descriptor 3: ");
    return kCannotRun;
  }
  // Every signal stays blocked here; the caller's posix_spawn blocked them already.
  // Block them anyway for a guard started some other way.
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);

  if (cgroup && !join_cgroup(cgroup)) {
    write_text("ci-test-guard: cannot join the cgroup ");
    write_text(cgroup);
    write_error(": ");
    return kCannotRun;
  }
  if (as_user && !drop_to(uid, gid)) {
    write_error("ci-test-guard: cannot drop to the test user: ");
    return kCannotRun;
  }

  pid_t guard = ::getpid();
  pid_t command = ::fork();
  if (command < 0) {
    write_error("cannot start the test command: ");
    return kCannotRun;
  }
  if (command == 0) exec_command(guard, argv + arg + 1);

  int command_fd = pidfd_open(command);
  while (true) {
    struct pollfd fds[2] = {{kLifeline, POLLIN, 0}, {command_fd, POLLIN, 0}};
    // Without a pidfd (an old kernel), look for the command's end now and then.
    int n = ::poll(fds, command_fd >= 0 ? 2 : 1, command_fd >= 0 ? -1 : 50);
    if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      ::kill(0, SIGKILL);
      ::_exit(128 + SIGKILL);
    }
    int status = 0;
    pid_t ended = ::waitpid(command, &status, WNOHANG);
    if (ended == command) exit_like(status);
    if (ended < 0 && errno != EINTR) return kCannotRun;
  }
}
