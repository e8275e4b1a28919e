// Runner start-up: its state folder, the folder of the jobs' checkouts, the sandbox
// and the jobs' cgroups (runner.h).
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ci/files.h"
#include "runner/runner.h"
#include "runner/sandbox.h"

namespace ci::runner {
namespace {

// The file naming a work root made outside the state folder, for the next start to
// remove what a killed runner left in it.
constexpr const char* kWorkRootNote = "work-root";

// A work folder of a runner's own outside its state folder: <kWorkFolders>/<kWorkPrefix>
// <pid>-XXXXXX, named after the runner that made it.
constexpr const char* kWorkFolders = "/var/tmp";
constexpr std::string_view kWorkPrefix = "tinyci-work-";

bool is_own_work_folder(const std::string& path) {
  return path.rfind(std::string(kWorkFolders) + "/" + std::string(kWorkPrefix), 0) == 0;
}

// The runner that made the work folder `name`; 0 for any other name.
pid_t work_folder_maker(const std::string& name) {
  const std::string prefix(kWorkPrefix);
  if (name.rfind(prefix, 0) != 0) return 0;
  size_t dash = name.find('-', prefix.size());
  if (dash == std::string::npos) return 0;
  auto pid = parse_u64(name.substr(prefix.size(), dash - prefix.size()), INT32_MAX);
  return pid ? static_cast<pid_t>(*pid) : 0;
}

}  // namespace

Result<void> Runner::open_state() {
  if (auto made = make_dirs(state_dir_); !made) return make_error("state folder: " + made.error());
  // The test user may have to pass through it to reach its checkout (work/), never to
  // list or read it.
  ::chmod(state_dir_.c_str(), 0711);
  std::string lock_path = (std::filesystem::path(state_dir_) / "lock").string();
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock.valid()) return make_error("cannot open " + lock_path + ": " + std::strerror(errno));
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    return make_error("another ci-runner uses the state folder " + state_dir_ +
                      " (give each runner its own clone, or its own --state-dir)");
  }
  state_lock_ = std::move(lock);
  return {};
}

// A job's checkout is made under the work root, which the test user must be able to
// reach: <state>/work, or, when a folder above the state folder is closed to it (a
// runner running as root from its home), a folder of its own under /var/tmp.
Result<void> Runner::prepare_work_root() {
  if (::geteuid() == 0) {
    auto user = find_test_user(options_.test_user);
    if (!user) return make_error("--test-user: " + user.error());
    job_options_.user = *user;
  }
  namespace fs = std::filesystem;
  std::string note = (fs::path(state_dir_) / kWorkRootNote).string();
  // What a killed runner left: its checkouts are not to be trusted.
  if (auto earlier = read_file(note); earlier && !earlier->empty()) {
    std::string dir = earlier->substr(0, earlier->find('\n'));
    if (is_own_work_folder(dir)) (void)remove_tree(dir);
    ::unlink(note.c_str());
  }
  std::string work = (fs::path(state_dir_) / "work").string();
  if (auto removed = remove_tree(work); !removed) return removed;
  const TestUser& user = job_options_.user;
  if (!user.set || searchable_by(state_dir_, user.uid, user.gid)) {
    if (::mkdir(work.c_str(), 0711) != 0)
      return make_error("cannot make " + work + ": " + std::strerror(errno));
    ::chmod(work.c_str(), 0711);
    job_options_.work_root = work;
    return {};
  }
  // Named after this process, so that a later runner can tell the folders of runners
  // that are gone (their state folder gone with them, say) and remove them.
  std::error_code ec;
  for (fs::directory_iterator it("/var/tmp", ec), end; !ec && it != end; it.increment(ec)) {
    pid_t maker = work_folder_maker(it->path().filename().string());
    struct stat st {};
    if (maker > 0 && ::kill(maker, 0) != 0 && errno == ESRCH &&
        ::lstat(it->path().c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid())
      (void)remove_tree(it->path().string());
  }
  std::string pattern = std::string(kWorkFolders) + "/" + std::string(kWorkPrefix) +
                        std::to_string(::getpid()) + "-XXXXXX";
  if (!::mkdtemp(pattern.data()))
    return make_error("cannot make a work folder in /var/tmp: " +
                      std::string(std::strerror(errno)));
  ::chmod(pattern.c_str(), 0711);
  if (auto noted = write_file_atomic(note, pattern + "\n"); !noted) {
    (void)remove_tree(pattern);
    return noted;
  }
  spdlog::info("the test user {} cannot reach {}: checkouts are made in {}", user.name, state_dir_,
               pattern);
  job_options_.work_root = pattern;
  return {};
}

Result<void> Runner::prepare_sandbox() {
  SandboxOptions& sandbox = job_options_.sandbox;
  if (!sandbox.enabled) return {};
  auto bwrap = find_program(sandbox.bwrap.empty() ? "bwrap" : sandbox.bwrap);
  if (!bwrap) {
    return make_error("the sandbox needs bubblewrap: " + bwrap.error() +
                      " (install the package bubblewrap, or start with --sandbox off to run "
                      "tests unconfined)");
  }
  sandbox.bwrap = *bwrap;
  // What the test must not see: the runner's own files and secrets.
  std::vector<std::string> own;
  for (std::string path :
       {state_dir_, spool_.dir(), options_.job.repo, options_.workdir, options_.token_file})
    if (!path.empty()) own.push_back(path);
  sandbox.hidden.insert(sandbox.hidden.end(), own.begin(), own.end());
  if (const char* home = std::getenv("HOME"); home && *home) {
    sandbox.hidden.emplace_back(home);
    sandbox.home = home;
  }
  if (const passwd* self = ::getpwuid(::geteuid()); self && self->pw_dir)
    sandbox.hidden.emplace_back(self->pw_dir);
  // The users' runtime folders: the sockets of a systemd user manager, a session bus,
  // agents. A read-only mount does not stop a connect(), and through them a test could
  // start a process outside its sandbox with the runner's rights.
  sandbox.hidden.emplace_back("/run/user");
  // A shared folder is bound over the hidden ones: it must not bring back what they hide.
  namespace fs = std::filesystem;
  auto inside = [](const fs::path& path, const fs::path& dir) {
    auto [d, p] = std::mismatch(dir.begin(), dir.end(), path.begin(), path.end());
    return d == dir.end();
  };
  for (const auto& share : sandbox.shared) {
    std::error_code ec;
    fs::path shared = fs::weakly_canonical(fs::absolute(share, ec), ec);
    std::vector<std::string> guarded = own;
    guarded.push_back(job_options_.work_root);
    for (const std::string& path : guarded) {
      fs::path mine = fs::weakly_canonical(fs::absolute(path, ec), ec);
      if (inside(mine, shared) || inside(shared, mine)) {
        return make_error("--sandbox-share " + share + " would let every test reach " + path +
                          ", the runner's own: share a folder outside it");
      }
    }
  }

  // Once, as every job will: a command in the sandbox, as the test user.
  std::string probe = (std::filesystem::path(job_options_.work_root) / "sandbox-check").string();
  (void)remove_tree(probe);
  if (::mkdir(probe.c_str(), 0700) != 0)
    return make_error("cannot make " + probe + ": " + std::strerror(errno));
  if (job_options_.user.set) (void)chown_tree(probe, job_options_.user.uid, job_options_.user.gid);
  CommandSpec spec;
  job_options_.box.emplace(sandbox);
  spec.argv = job_options_.box->command(probe, {"/bin/sh", "-c", "exit 0"});
  spec.cwd = probe;
  spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  spec.timeout = std::chrono::seconds(30);
  spec.guard = true;
  run_as(job_options_.user, &spec);
  auto ran = run_command(spec);
  (void)remove_tree(probe);
  std::string why =
      !ran ? ran.error()
      : ran->exit_code != 0
          ? ran->output.empty() ? "exit code " + std::to_string(ran->exit_code) : ran->output
          : "";
  if (!why.empty()) {
    while (!why.empty() && why.back() == '\n') why.pop_back();
    return make_error(
        "the sandbox cannot run on this machine (" + why +
        "): bubblewrap needs unprivileged user namespaces (sysctl "
        "kernel.unprivileged_userns_clone=1 "
        "and user.max_user_namespaces > 0); or start with --sandbox off to run tests unconfined");
  }
  return {};
}

Result<void> Runner::prepare_cgroups() {
  const CgroupLimits& limits = options_.cgroup_limits;
  if (!limits.any() && !options_.job_cgroup) {
    // Moving each test's guard into a new cgroup costs the kernel a grace period (about
    // 10 ms a job). In the sandbox its PID namespace already ends every process of a
    // test; without it, what a test starts in a session of its own may outlive it.
    if (!job_options_.sandbox.enabled) {
      spdlog::warn(
          "with the sandbox off and no cgroup per job, a process a test starts in a session "
          "of its own outlives it and can reach later jobs' checkouts (--job-cgroup on ends "
          "them)");
    }
    return {};
  }
  auto cgroups = JobCgroups::open(limits);
  if (!cgroups) {
    return make_error(std::string(limits.any() ? "--memory-max, --cpus and --pids-max need"
                                               : "--job-cgroup on needs") +
                      " cgroups the runner can make: " + cgroups.error());
  }
  std::string shown;
  if (limits.memory_max > 0) shown += ", memory " + std::to_string(limits.memory_max) + " bytes";
  if (limits.cpus > 0) shown += ", " + std::to_string(limits.cpus).substr(0, 6) + " CPUs";
  if (limits.pids_max > 0) shown += ", " + std::to_string(limits.pids_max) + " processes";
  spdlog::info("each job runs in a cgroup of its own in {}{}", cgroups->base(), shown);
  job_options_.cgroups = std::move(*cgroups);
  return {};
}

// Where runners kept their spool before they had a state folder: inside the clone.
std::string Runner::old_spool_dir() const {
  return (std::filesystem::path(options_.job.repo) / ".git" / "ci-runner-spool").string();
}

// Results an earlier version of the runner left undelivered in the clone's spool move to
// this one's, so that an upgrade loses none.
void Runner::take_up_old_spool() {
  namespace fs = std::filesystem;
  if (options_.job.repo.empty()) return;
  std::string old = old_spool_dir();
  std::error_code ec;
  if (!fs::is_directory(old, ec) || fs::equivalent(old, spool_.dir(), ec)) return;
  for (fs::directory_iterator it(old, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (!name.ends_with(".result")) continue;
    std::string to = (fs::path(spool_.dir()) / name).string();
    std::error_code moved;
    fs::rename(it->path(), to, moved);
    if (moved) {  // another file system: copy, then remove
      auto data = read_file(it->path().string());
      if (!data || !write_file_atomic(to, *data)) {
        spdlog::warn("cannot move {} into the spool {}", it->path().string(), spool_.dir());
        continue;
      }
      fs::remove(it->path(), moved);
    }
    spdlog::info("moved {} from {} into the spool", name, old);
  }
}

// A work folder of its own outside the state folder goes with the runner.
void Runner::remove_own_work_root() {
  const std::string& work = job_options_.work_root;
  if (is_own_work_folder(work) && remove_tree(work))
    ::unlink((std::filesystem::path(state_dir_) / kWorkRootNote).c_str());
}

}  // namespace ci::runner
