#include "ci/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
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

// Pointers to the strings of `v` for an argv or envp, ended by a null pointer.
std::vector<char*> c_strings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  // posix_spawn's arguments are char* const[] for historical reasons only: it does not
  // write to the strings.
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// A descriptor to hand to a child, moved to 10 or above if it is lower, so that
// setting up the child's 0 to 3 cannot overwrite it. -1 on failure (`fd` is closed
// either way when moved).
int keep_high(int fd) {
  if (fd >= 10) return fd;
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return high;
}

// posix_spawn's attributes and file actions, released on scope exit.
class SpawnSetup {
 public:
  SpawnSetup() {
    ok_ = ::posix_spawnattr_init(&attr_) == 0;
    if (::posix_spawn_file_actions_init(&actions_) != 0) {
      if (ok_) ::posix_spawnattr_destroy(&attr_);
      ok_ = false;
    }
  }
  ~SpawnSetup() {
    if (!ok_) return;
    ::posix_spawn_file_actions_destroy(&actions_);
    ::posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  bool ok() const { return ok_; }
  posix_spawnattr_t* attr() { return &attr_; }
  posix_spawn_file_actions_t* actions() { return &actions_; }

 private:
  bool ok_ = false;
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

std::string errno_text(int error) {
  const char* text = strerrordesc_np(error);
  return text ? text : "error " + std::to_string(error);
}

}  // namespace

const std::string& default_guard_program() {
  static const std::string path = [] {
    std::error_code ec;
    std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return std::string("ci-test-guard");
    return (self.parent_path() / "ci-test-guard").string();
  }();
  return path;
}

Result<CommandResult> run_command(const CommandSpec& spec, const CancelToken* cancel) {
  if (spec.argv.empty()) return make_error("empty command");
  std::string guard_program =
      spec.guard_program.empty() ? default_guard_program() : spec.guard_program;
  // posix_spawn would look for a relative name in the command's working folder.
  if (spec.guard && guard_program.front() != '/') {
    std::error_code ec;
    guard_program = std::filesystem::absolute(guard_program, ec).string();
  }
  if (spec.guard && ::access(guard_program.c_str(), X_OK) != 0) {
    return make_error("the test guard " + guard_program + " cannot be run (" + errno_text(errno) +
                      "): ci-test-guard belongs in the folder of the executable that runs tests");
  }
  SpawnSetup setup;
  if (!setup.ok()) return make_error("posix_spawn: cannot set up the attributes");
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return make_error(std::string("pipe: ") + strerror(errno));
  int out_fd = pipefd[0];
  int out_w = keep_high(pipefd[1]);
  // With a guard: the guard's lifeline, a pipe this process never writes to. Its
  // write end is close-on-exec like every descriptor here, so that no other child of
  // this process keeps it open.
  int alive[2] = {-1, -1};
  auto close_all = [&] {
    for (int* fd : {&out_fd, &out_w, &alive[0], &alive[1]}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  };
  if (out_w < 0) {
    auto err = std::string("pipe: ") + strerror(errno);
    close_all();
    return make_error(err);
  }
  if (spec.guard) {
    if (::pipe2(alive, O_CLOEXEC) != 0 || (alive[0] = keep_high(alive[0])) < 0) {
      auto err = std::string("pipe: ") + strerror(errno);
      close_all();
      return make_error(err);
    }
  }

  // The child: stdin from /dev/null, stdout and stderr into the pipe, the lifeline on 3
  // (with a guard), nothing else open; its own process group; in `cwd`; SIGPIPE at its
  // default (a daemon ignores it, and an ignored signal survives exec); the guard with
  // every signal blocked (a SIGTERM for the group is for the command), the command
  // with none.
  posix_spawn_file_actions_t* actions = setup.actions();
  int fa = ::posix_spawn_file_actions_addopen(actions, 0, "/dev/null", O_RDONLY, 0);
  if (fa == 0) fa = ::posix_spawn_file_actions_adddup2(actions, out_w, 1);
  if (fa == 0) fa = ::posix_spawn_file_actions_adddup2(actions, out_w, 2);
  if (fa == 0 && spec.guard) fa = ::posix_spawn_file_actions_adddup2(actions, alive[0], 3);
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
  if (fa != 0) {
    close_all();
    return make_error("posix_spawn: " + errno_text(fa));
  }

  std::string caller = std::to_string(::getpid());
  std::vector<std::string> guard_argv;
  if (spec.guard) {
    guard_argv.push_back(guard_program);
    if (!spec.cgroup.empty()) guard_argv.insert(guard_argv.end(), {"--cgroup", spec.cgroup});
    if (spec.run_as_user) {
      guard_argv.insert(guard_argv.end(),
                        {"--user", std::to_string(spec.uid), std::to_string(spec.gid)});
    }
    guard_argv.push_back(caller);
    guard_argv.insert(guard_argv.end(), spec.argv.begin(), spec.argv.end());
  }
  std::vector<char*> argv = c_strings(spec.guard ? guard_argv : spec.argv);
  std::vector<char*> envp = c_strings(spec.env);
  auto start = Clock::now();
  pid_t pid = -1;
  // posix_spawn returns once the child has run exec (or failed to): the process group
  // exists from here on.
  int spawned = spec.guard ? ::posix_spawn(&pid, guard_program.c_str(), actions, attr, argv.data(),
                                           envp.data())
                           : ::posix_spawnp(&pid, argv[0], actions, attr, argv.data(), envp.data());
  if (spawned != 0) {
    close_all();
    if (!spec.cwd.empty() && ::access(spec.cwd.c_str(), X_OK) != 0)
      return make_error("cannot enter the working folder " + spec.cwd + ": " + errno_text(errno));
    return make_error("cannot start " + std::string(argv[0]) + ": " + errno_text(spawned));
  }
  ::close(out_w);
  out_w = -1;
  if (alive[0] >= 0) {
    ::close(alive[0]);
    alive[0] = -1;
  }
  if (spec.on_started) spec.on_started(pid);
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

  // SIGKILL also ends, through its cgroup, what the command started outside its group.
  const std::string cgroup_kill = spec.cgroup.empty() ? "" : spec.cgroup + "/cgroup.kill";
  auto kill_group = [&](int sig) {
    ::kill(-pid, sig);
    if (sig != SIGKILL || cgroup_kill.empty()) return;
    int fd = ::open(cgroup_kill.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)!::write(fd, "1", 1);
    ::close(fd);
  };

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
  close_all();
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
  std::vector<char*> args = c_strings(argv);
  std::vector<char*> envp = c_strings(env);
  SpawnSetup setup;
  if (!setup.ok()) return make_error("posix_spawn: cannot set up the attributes");
  int out = ::open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return make_error("cannot open " + output_file + ": " + strerror(errno));
  out = keep_high(out);
  if (out < 0) return make_error("cannot open " + output_file + ": " + strerror(errno));
  sigset_t none;
  sigemptyset(&none);
  int fa = ::posix_spawn_file_actions_addopen(setup.actions(), 0, "/dev/null", O_RDONLY, 0);
  if (fa == 0) fa = ::posix_spawn_file_actions_adddup2(setup.actions(), out, 1);
  if (fa == 0) fa = ::posix_spawn_file_actions_adddup2(setup.actions(), out, 2);
  if (fa == 0) fa = ::posix_spawnattr_setsigmask(setup.attr(), &none);
  if (fa == 0) fa = ::posix_spawnattr_setflags(setup.attr(), POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  if (fa == 0) {
    fa = ::posix_spawnp(&pid, args[0], setup.actions(), setup.attr(), args.data(),
                        env.empty() ? environ : envp.data());
  }
  ::close(out);
  if (fa != 0) return make_error("cannot start " + argv[0] + ": " + errno_text(fa));
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
