#include "runner/cgroup.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "ci/fd.h"
#include "ci/files.h"

namespace ci::runner {

namespace {

namespace fs = std::filesystem;

std::string sys_error() { return std::strerror(errno); }

// Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo; "" if nowhere.
std::string cgroup2_mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream after(line.substr(dash + 3));
    std::string fstype;
    after >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream fields(line.substr(0, dash));
    std::string id, parent, device, root, mount_point;
    fields >> id >> parent >> device >> root >> mount_point;
    if (root == "/") return mount_point;
  }
  return {};
}

// This process's cgroup in the v2 hierarchy ("/..."), from /proc/self/cgroup.
std::string own_cgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return {};
}

// 0, or the errno of the failure.
int write_raw(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return errno;
  ssize_t n = ::write(fd.get(), text.data(), text.size());
  return n == static_cast<ssize_t>(text.size()) ? 0 : n < 0 ? errno : EIO;
}

Result<void> write_text(const std::string& path, const std::string& text) {
  if (int error = write_raw(path, text); error != 0)
    return make_error("cannot write '" + text + "' to " + path + ": " + std::strerror(error));
  return {};
}

std::set<std::string> words_of(const std::string& path) {
  std::set<std::string> words;
  auto text = read_file(path);
  if (!text) return words;
  std::istringstream in(*text);
  for (std::string w; in >> w;) words.insert(w);
  return words;
}

// "tinyci-<pid>-...": the pid of the runner that made it.
pid_t maker_of(const std::string& name) {
  if (name.rfind("tinyci-", 0) != 0) return 0;
  size_t end = name.find('-', 7);
  std::string digits = name.substr(7, end == std::string::npos ? end : end - 7);
  if (digits.empty() || digits.size() > 9 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return 0;
  return static_cast<pid_t>(std::stol(digits));
}

std::string prefix() { return "tinyci-" + std::to_string(::getpid()) + "-"; }

}  // namespace

Result<JobCgroups> JobCgroups::open(const CgroupLimits& limits) {
  std::string mount = cgroup2_mount();
  if (mount.empty()) return make_error("no cgroup v2 hierarchy is mounted");
  std::string own = own_cgroup();
  if (own.empty()) return make_error("this process is in no cgroup v2");
  JobCgroups cgroups;
  cgroups.limits_ = limits;
  cgroups.base_ = own == "/" ? mount : mount + own;
  const std::string& base = cgroups.base_;

  // What runners that are gone left: their jobs' cgroups, with whatever a test left
  // running in them when its runner was killed.
  std::error_code ec;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    pid_t maker = maker_of(it->path().filename().string());
    if (maker > 0 && maker != ::getpid() && ::kill(maker, 0) != 0 && errno == ESRCH)
      (void)kill_and_remove(it->path().string(), std::chrono::seconds(2));
  }

  std::string probe = base + "/" + prefix() + "probe";
  if (::mkdir(probe.c_str(), 0755) != 0 && errno != EEXIST)
    return make_error("cannot make a cgroup in " + base + ": " + sys_error());
  bool can_kill = ::access((probe + "/cgroup.kill").c_str(), W_OK) == 0;
  ::rmdir(probe.c_str());
  if (!can_kill) return make_error("the kernel has no cgroup.kill (it needs Linux 5.14 or later)");
  if (!limits.any()) return cgroups;

  std::vector<std::string> needed;
  if (limits.memory_max > 0) needed.push_back("memory");
  if (limits.cpus > 0) needed.push_back("cpu");
  if (limits.pids_max > 0) needed.push_back("pids");
  std::set<std::string> offered = words_of(base + "/cgroup.controllers");
  for (const auto& controller : needed) {
    if (!offered.count(controller)) {
      std::string list;
      for (const auto& c : offered) list += (list.empty() ? "" : " ") + c;
      return make_error("the " + controller + " controller is not available in " + base +
                        " (it offers: " + (list.empty() ? "none" : list) + ")");
    }
  }
  std::set<std::string> enabled = words_of(base + "/cgroup.subtree_control");
  for (const auto& controller : needed) {
    if (enabled.count(controller)) continue;
    std::string control = base + "/cgroup.subtree_control";
    int error = write_raw(control, "+" + controller);
    if (error == EBUSY) {
      // A cgroup that holds processes cannot hand controllers down: the runner moves
      // into a cgroup of its own below, and tries again.
      std::string self = base + "/" + prefix() + "runner";
      if (::mkdir(self.c_str(), 0755) != 0 && errno != EEXIST)
        return make_error("cannot make a cgroup in " + base + ": " + sys_error());
      if (auto moved = write_text(self + "/cgroup.procs", std::to_string(::getpid())); !moved)
        return Error{moved.error()};
      if (write_raw(control, "+" + controller) != 0) {
        return make_error(
            "cannot enable the " + controller + " controller in " + base +
            ": other processes are in that cgroup; start the runner in a cgroup of its own "
            "(systemd-run --scope -p Delegate=yes ci-runner ..., or a service with "
            "Delegate=yes)");
      }
    } else if (error != 0) {
      return make_error("cannot enable the " + controller + " controller in " + base + ": " +
                        std::strerror(error));
    }
  }
  return cgroups;
}

Result<std::string> JobCgroups::make(const std::string& name) const {
  std::string path = base_ + "/" + prefix() + name;
  if (::mkdir(path.c_str(), 0755) != 0) {
    if (errno != EEXIST) return make_error("cannot make the cgroup " + path + ": " + sys_error());
    // Left by this very process for the same job: empty it and use it again.
    if (auto emptied = kill_and_remove(path, std::chrono::seconds(5)); !emptied)
      return Error{emptied.error()};
    if (::mkdir(path.c_str(), 0755) != 0)
      return make_error("cannot make the cgroup " + path + ": " + sys_error());
  }
  auto set = [&](const std::string& file, const std::string& value) -> Result<void> {
    return write_text(path + "/" + file, value);
  };
  Result<void> done;
  if (limits_.memory_max > 0) {
    done = set("memory.max", std::to_string(limits_.memory_max));
    // Without swap of its own, the memory limit cannot be dodged by swapping.
    if (done && ::access((path + "/memory.swap.max").c_str(), W_OK) == 0)
      done = set("memory.swap.max", "0");
  }
  if (done && limits_.cpus > 0) {
    auto quota = static_cast<long long>(std::llround(limits_.cpus * 100000));
    done = set("cpu.max", std::to_string(quota) + " 100000");
  }
  if (done && limits_.pids_max > 0) done = set("pids.max", std::to_string(limits_.pids_max));
  if (!done) {
    ::rmdir(path.c_str());
    return Error{done.error()};
  }
  return path;
}

Result<void> JobCgroups::kill_and_remove(const std::string& path,
                                         std::chrono::milliseconds timeout) {
  if (auto killed = write_text(path + "/cgroup.kill", "1"); !killed) return killed;
  std::string events = path + "/cgroup.events";
  UniqueFd fd(::open(events.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return make_error("cannot open " + events + ": " + sys_error());
  // Real time, not the runner's Clock: this waits for the kernel to end real processes,
  // as the test's own timeout does.
  using RealClock = std::chrono::steady_clock;
  auto deadline = RealClock::now() + timeout;
  bool empty = false;
  while (true) {
    char buf[256];
    ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
    if (n > 0) {
      buf[n] = '\0';
      empty = std::strstr(buf, "populated 0") != nullptr;
    }
    if (empty || RealClock::now() >= deadline) break;
    // The kernel marks the file with POLLPRI when it changes.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - RealClock::now());
    pollfd p{fd.get(), POLLPRI, 0};
    ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, 100)));
  }
  fd.reset();
  if (!empty) {
    return make_error("processes of the test are still alive in " + path + " " +
                      std::to_string(timeout.count()) + " ms after it was killed");
  }
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT)
    return make_error("cannot remove the cgroup " + path + ": " + sys_error());
  return {};
}

}  // namespace ci::runner
