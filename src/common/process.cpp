#include "ci/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;

namespace ci {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

CancelToken::CancelToken() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
CancelToken::~CancelToken() {
  if (fd_ >= 0) ::close(fd_);
}
void CancelToken::cancel() {
  cancelled_ = true;
  uint64_t one = 1;
  if (fd_ >= 0) (void)!::write(fd_, &one, sizeof one);
}

std::vector<std::string> current_environment() {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
  return out;
}

namespace {

// The room kept between the head and the tail's ring for the note on the cut.
constexpr size_t kNoteRoom = 64;

std::string cut_note(uint64_t cut) {
  return "\n[... " + std::to_string(cut) + " bytes of output cut here ...]\n";
}

}  // namespace

CappedOutput::CappedOutput(size_t cap) : head_cap_(cap / 2), tail_cap_(cap - cap / 2) {}

void CappedOutput::append(const char* data, size_t n) {
  total_ += n;
  if (buf_.size() < head_cap_) {
    size_t k = std::min(n, head_cap_ - buf_.size());
    buf_.append(data, k);
    data += k;
    n -= k;
  }
  if (n == 0 || tail_cap_ == 0) return;
  const size_t ring = head_cap_ + kNoteRoom;
  if (buf_.size() == head_cap_) {
    // The first byte past the head: room for the note and the whole ring, once.
    buf_.reserve(ring + tail_cap_);
    buf_.append(kNoteRoom, '\0');
  }
  if (n >= tail_cap_) {
    // Only the last tail_cap_ bytes stay: the ring starts over with them.
    data += n - tail_cap_;
    n = tail_cap_;
    buf_.resize(ring);
    ring_len_ = 0;
    ring_pos_ = 0;
  }
  if (ring_len_ < tail_cap_) {
    // Not yet full: the ring grows at its end.
    size_t k = std::min(n, tail_cap_ - ring_len_);
    buf_.append(data, k);
    data += k;
    n -= k;
    ring_len_ += k;
    ring_pos_ = ring_len_ % tail_cap_;
  }
  // Full: round the ring, over the oldest bytes.
  while (n > 0) {
    size_t k = std::min(n, tail_cap_ - ring_pos_);
    std::memcpy(buf_.data() + ring + ring_pos_, data, k);
    data += k;
    n -= k;
    ring_pos_ = (ring_pos_ + k) % tail_cap_;
  }
}

std::string CappedOutput::finish() {
  size_t head = std::min(buf_.size(), head_cap_);
  uint64_t cut = total_ - head - ring_len_;
  std::string note = cut > 0 ? cut_note(cut) : std::string();
  if (buf_.size() > head_cap_) {
    // In place: the ring turned so that its oldest byte comes first, then moved up to
    // follow the note.
    char* ring = buf_.data() + head_cap_ + kNoteRoom;
    if (ring_len_ == tail_cap_ && ring_pos_ != 0)
      std::rotate(ring, ring + ring_pos_, ring + tail_cap_);
    char* at = buf_.data() + head_cap_;
    std::memcpy(at, note.data(), note.size());  // note.size() < kNoteRoom
    std::memmove(at + note.size(), ring, ring_len_);
    buf_.resize(head_cap_ + note.size() + ring_len_);
  } else {
    buf_ += note;  // no tail at all (a cap of 0)
  }
  std::string out = std::move(buf_);
  buf_ = std::string();
  ring_pos_ = ring_len_ = 0;
  total_ = 0;
  return out;
}

namespace {

struct CStrings {
  std::vector<std::string> storage;
  std::vector<char*> ptrs;
  explicit CStrings(const std::vector<std::string>& v) : storage(v) {
    for (auto& s : storage) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
};

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// What follows runs in forked children of a possibly multithreaded process: only
// async-signal-safe calls, no allocation.

void write_error(const char* what) {
  (void)!::write(2, what, strlen(what));
  const char* err = strerrordesc_np(errno);  // unlike strerror, no locale and no allocation
  if (!err) err = "unknown error";
  (void)!::write(2, err, strlen(err));
  (void)!::write(2, "\n", 1);
}

// stdin from /dev/null, stdout and stderr to `out`.
void redirect_stdio(int out) {
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) ::dup2(devnull, 0);
  ::dup2(out, 1);
  ::dup2(out, 2);
}

[[noreturn]] void exec_command(char* const* argv, char* const* envp) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // A daemon ignores SIGPIPE, and an ignored signal survives exec: a test's
  // pipelines must get the default.
  ::signal(SIGPIPE, SIG_DFL);
  ::execvpe(argv[0], argv, envp);
  write_error("cannot execute the test command: ");
  ::_exit(127);
}

// Ends the calling process the way `status` says its child ended.
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

// The guard: leads the group, runs the command in it and waits. The read end of a
// pipe whose only writer is the caller reaches end of file when the caller dies,
// however it dies; the guard then kills the whole group, itself included.
[[noreturn]] void run_guard(pid_t caller, int alive_fd, int out_fd, const char* cwd,
                            char* const* argv, char* const* envp) {
  sigset_t all;
  sigfillset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);  // a SIGTERM for the group is for the command
  ::setpgid(0, 0);
  // Out of the way of the descriptors about to be set up.
  int alive = ::fcntl(alive_fd, F_DUPFD_CLOEXEC, 10);
  int out = ::fcntl(out_fd, F_DUPFD_CLOEXEC, 10);
  if (alive < 0 || out < 0 || ::getppid() != caller) ::_exit(127);
  redirect_stdio(out);
  if (::dup3(alive, 3, O_CLOEXEC) < 0) ::_exit(127);
  // Nothing of the caller's (its sockets, its other pipes) reaches the command.
  long closed = -1;
#ifdef SYS_close_range
  closed = ::syscall(SYS_close_range, 4u, ~0u, 0u);
#endif
  if (closed != 0) {
    struct rlimit files {};
    rlim_t last = ::getrlimit(RLIMIT_NOFILE, &files) == 0 ? files.rlim_cur : 1024;
    for (rlim_t fd = 4; fd < last && fd < 65536; ++fd) ::close(static_cast<int>(fd));
  }
  alive = 3;
  if (cwd && ::chdir(cwd) != 0) {
    write_error("cannot enter the working folder: ");
    ::_exit(127);
  }
  pid_t guard = ::getpid();
  pid_t command = ::fork();
  if (command < 0) {
    write_error("cannot start the test command: ");
    ::_exit(127);
  }
  if (command == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != guard) ::_exit(127);
    exec_command(argv, envp);
  }
  int command_fd = pidfd_open(command);
  while (true) {
    struct pollfd fds[2] = {{alive, POLLIN, 0}, {command_fd, POLLIN, 0}};
    // Without a pidfd (an old kernel), look for the command's end now and then.
    int n = ::poll(fds, command_fd >= 0 ? 2 : 1, command_fd >= 0 ? -1 : 50);
    if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      ::kill(0, SIGKILL);
      ::_exit(137);
    }
    int status = 0;
    pid_t ended = ::waitpid(command, &status, WNOHANG);
    if (ended == command) exit_like(status);
    if (ended < 0 && errno != EINTR) ::_exit(127);
  }
}

}  // namespace

Result<CommandResult> run_command(const CommandSpec& spec, const CancelToken* cancel) {
  if (spec.argv.empty()) return make_error("empty command");
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return make_error(std::string("pipe: ") + strerror(errno));
  // With a guard: the guard's lifeline, a pipe this process never writes to.
  int alive[2] = {-1, -1};
  if (spec.guard && ::pipe2(alive, O_CLOEXEC) != 0) {
    auto err = std::string("pipe: ") + strerror(errno);
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return make_error(err);
  }
  auto close_alive = [&] {
    for (int& fd : alive) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  };
  CStrings argv(spec.argv);
  CStrings envp(spec.env);
  const char* cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  pid_t parent = ::getpid();
  auto start = Clock::now();

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    close_alive();
    return make_error(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    if (spec.guard) {
      ::close(alive[1]);
      run_guard(parent, alive[0], pipefd[1], cwd, argv.ptrs.data(), envp.ptrs.data());
    }
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    redirect_stdio(pipefd[1]);
    if (cwd && ::chdir(cwd) != 0) {
      const char msg[] = "cannot enter the working folder\n";
      (void)!::write(2, msg, sizeof msg - 1);
      ::_exit(127);
    }
    exec_command(argv.ptrs.data(), envp.ptrs.data());
  }
  if (alive[0] >= 0) {
    ::close(alive[0]);
    alive[0] = -1;
  }
  ::setpgid(pid, pid);  // also in the parent, so the group exists before we signal it
  ::close(pipefd[1]);
  if (spec.on_started) spec.on_started(pid);
  int out_fd = pipefd[0];
  ::fcntl(out_fd, F_SETFL, O_NONBLOCK);
  int pid_fd = pidfd_open(pid);

  CommandResult result;
  CappedOutput output(spec.output_cap);
  bool exited = false;
  int wstatus = 0;
  bool pipe_open = true;
  bool term_sent = false;
  Clock::time_point kill_at{};
  Clock::time_point deadline =
      spec.timeout.count() > 0 ? start + spec.timeout : Clock::time_point::max();
  // After the main process ends, what is left of its group is killed and the pipe
  // drained for at most this long (a grandchild may hold it open).
  Clock::time_point drain_deadline = Clock::time_point::max();
  char buf[65536];

  auto kill_group = [&](int sig) { ::kill(-pid, sig); };

  while (!exited || pipe_open) {
    auto now = Clock::now();
    if (!exited && !term_sent && now >= deadline) {
      result.timed_out = true;
      kill_group(SIGTERM);
      term_sent = true;
      kill_at = now + spec.kill_grace;
    }
    if (!exited && !term_sent && cancel && cancel->cancelled()) {
      result.cancelled = true;
      kill_group(SIGTERM);
      term_sent = true;
      kill_at = now + spec.kill_grace;
    }
    if (term_sent && !exited && now >= kill_at) kill_group(SIGKILL);
    if (exited && now >= drain_deadline) break;

    Clock::time_point wake = Clock::time_point::max();
    if (!term_sent) wake = deadline;
    if (term_sent && !exited) wake = kill_at;
    if (exited) wake = drain_deadline;
    int timeout_ms = -1;
    if (wake != Clock::time_point::max()) {
      auto left = std::chrono::duration_cast<milliseconds>(wake - now).count();
      timeout_ms = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(left + 1, 1 << 30)));
    }
    struct pollfd fds[3];
    int nfds = 0;
    int out_i = -1, pid_i = -1, cancel_i = -1;
    if (pipe_open) {
      fds[nfds] = {out_fd, POLLIN, 0};
      out_i = nfds++;
    }
    if (!exited && pid_fd >= 0) {
      fds[nfds] = {pid_fd, POLLIN, 0};
      pid_i = nfds++;
    }
    if (!exited && !term_sent && cancel && cancel->fd() >= 0) {
      fds[nfds] = {cancel->fd(), POLLIN, 0};
      cancel_i = nfds++;
    }
    if (pid_fd < 0 && !exited && timeout_ms < 0) timeout_ms = 50;  // no pidfd: poll for exit
    int n = ::poll(fds, nfds, timeout_ms);
    if (n < 0 && errno != EINTR) break;
    (void)cancel_i;
    if (out_i >= 0 && (fds[out_i].revents & (POLLIN | POLLHUP | POLLERR))) {
      while (true) {
        ssize_t r = ::read(out_fd, buf, sizeof buf);
        if (r > 0) {
          output.append(buf, static_cast<size_t>(r));
          continue;
        }
        if (r == 0) pipe_open = false;
        break;  // EAGAIN or EOF
      }
    }
    bool check_exit = pid_fd < 0 || (pid_i >= 0 && (fds[pid_i].revents & POLLIN));
    if (!exited && check_exit) {
      pid_t w = ::waitpid(pid, &wstatus, WNOHANG);
      if (w == pid) {
        exited = true;
        kill_group(SIGKILL);
        drain_deadline = Clock::now() + milliseconds(2000);
      }
    }
  }
  if (!exited) {
    kill_group(SIGKILL);
    ::waitpid(pid, &wstatus, 0);
  }
  if (pid_fd >= 0) ::close(pid_fd);
  ::close(out_fd);
  close_alive();
  result.duration = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  if (WIFEXITED(wstatus)) result.exit_code = WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) result.term_signal = WTERMSIG(wstatus);
  result.output_bytes = output.total();
  result.output = output.finish();
  return result;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && status_ == -1) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
  }
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), status_(other.status_) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    this->~ChildProcess();
    pid_ = other.pid_;
    status_ = other.status_;
    other.pid_ = -1;
  }
  return *this;
}

Result<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& argv,
                                         const std::string& output_file,
                                         const std::vector<std::string>& env) {
  if (argv.empty()) return make_error("empty command");
  CStrings args(argv);
  CStrings envp(env.empty() ? current_environment() : env);
  int out = ::open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return make_error("cannot open " + output_file + ": " + strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    return make_error(std::string("fork: ") + strerror(errno));
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execvpe(args.ptrs[0], args.ptrs.data(), envp.ptrs.data());
    ::_exit(127);
  }
  ::close(out);
  ChildProcess child;
  child.pid_ = pid;
  return child;
}

bool ChildProcess::running() {
  if (pid_ <= 0 || status_ != -1) return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = st;
    return false;
  }
  return true;
}

void ChildProcess::signal(int sig) {
  if (pid_ > 0 && status_ == -1) ::kill(pid_, sig);
}

int ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  if (status_ != -1) return status_;
  int fd = pidfd_open(pid_);
  auto deadline = Clock::now() + timeout;
  while (true) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = st;
      break;
    }
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    if (fd >= 0) {
      struct pollfd p = {fd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    } else {
      std::this_thread::sleep_for(milliseconds(std::min<int64_t>(left, 10)));
    }
  }
  if (fd >= 0) ::close(fd);
  return status_;
}

int ChildProcess::stop(std::chrono::milliseconds grace) {
  signal(SIGTERM);
  if (wait(grace) == -1) {
    signal(SIGKILL);
    wait(std::chrono::milliseconds(10000));
  }
  return status_;
}

}  // namespace ci
