// ChildProcess (ci/process.h): a long-lived child process, for daemons in tests and
// scripts. Its waits are on real time: they wait for a real process.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "ci/fd.h"
#include "ci/process.h"
#include "spawn.h"

extern char** environ;

namespace ci {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

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
  std::vector<char*> args = spawn::c_strings(argv);
  std::vector<char*> envp = spawn::c_strings(env);
  spawn::SpawnSetup setup;
  if (!setup.ok()) return make_error("posix_spawn: cannot set up the attributes");
  UniqueFd out(::open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!out.valid()) return make_error("cannot open " + output_file + ": " + strerror(errno));
  out = spawn::keep_high(std::move(out));
  if (!out.valid()) return make_error("cannot open " + output_file + ": " + strerror(errno));
  sigset_t none;
  sigemptyset(&none);
  int fa = ::posix_spawn_file_actions_addopen(setup.actions(), 0, "/dev/null", O_RDONLY, 0);
  if (fa == 0) fa = ::posix_spawn_file_actions_adddup2(setup.actions(), out.get(), 1);
  if (fa == 0) fa = ::posix_spawn_file_actions_adddup2(setup.actions(), out.get(), 2);
  if (fa == 0) fa = ::posix_spawnattr_setsigmask(setup.attr(), &none);
  if (fa == 0) fa = ::posix_spawnattr_setflags(setup.attr(), POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  if (fa == 0) {
    fa = ::posix_spawnp(&pid, args[0], setup.actions(), setup.attr(), args.data(),
                        env.empty() ? environ : envp.data());
  }
  out.reset();
  if (fa != 0) return make_error("cannot start " + argv[0] + ": " + spawn::errno_text(fa));
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
  UniqueFd fd = spawn::pidfd_open(pid_);
  auto deadline = SteadyClock::now() + timeout;
  while (true) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = st;
      break;
    }
    auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) break;
    if (fd.valid()) {
      struct pollfd p = {fd.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
    } else {
      std::this_thread::sleep_for(milliseconds(std::min<int64_t>(left, 10)));
    }
  }
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
