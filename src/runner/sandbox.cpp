#include "runner/sandbox.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace ci::runner {

namespace fs = std::filesystem;

Result<TestUser> find_test_user(const std::string& name) {
  if (name.empty()) return make_error("no test user named");
  std::vector<char> buf(16384);
  passwd entry{};
  passwd* found = nullptr;
  int error = 0;
  bool numeric = name.find_first_not_of("0123456789") == std::string::npos && name.size() < 10;
  if (numeric) {
    error =
        ::getpwuid_r(static_cast<uid_t>(std::stoul(name)), &entry, buf.data(), buf.size(), &found);
  } else {
    error = ::getpwnam_r(name.c_str(), &entry, buf.data(), buf.size(), &found);
  }
  if (error != 0) return make_error("cannot look up user '" + name + "': " + std::strerror(error));
  if (!found) return make_error("no user '" + name + "' on this machine");
  if (found->pw_uid == 0 || found->pw_gid == 0)
    return make_error("the test user must not be root or in group root ('" + name + "' is)");
  TestUser user;
  user.set = true;
  user.uid = found->pw_uid;
  user.gid = found->pw_gid;
  user.name = found->pw_name;
  user.home = found->pw_dir ? found->pw_dir : "/";
  return user;
}

void run_as(const TestUser& user, CommandSpec* spec) {
  spec->run_as_user = user.set;
  spec->uid = user.uid;
  spec->gid = user.gid;
}

Result<std::string> find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    if (::access(program.c_str(), X_OK) != 0)
      return make_error("cannot run " + program + ": " + std::strerror(errno));
    std::error_code ec;
    return fs::absolute(program, ec).string();
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path && *path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (!dir.empty() && dir.front() == '/') {
      std::string candidate = dir + "/" + program;
      struct stat st {};
      if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
          ::access(candidate.c_str(), X_OK) == 0)
        return candidate;
    }
    start = end + 1;
  }
  return make_error(program + " not found in PATH");
}

namespace {

// The path with its symbolic links resolved when it exists, else as given.
std::string resolved(const std::string& path) {
  std::error_code ec;
  fs::path canonical = fs::canonical(path, ec);
  return ec ? fs::absolute(path, ec).lexically_normal().string() : canonical.string();
}

}  // namespace

Sandbox::Sandbox(const SandboxOptions& options) {
  std::vector<std::string>& argv = mounts_;
  argv = {options.bwrap,   "--die-with-parent", "--unshare-user",      "--unshare-pid",
          "--unshare-ipc", "--unshare-uts",     "--unshare-cgroup-try"};
  if (!options.network) argv.push_back("--unshare-net");
  argv.insert(argv.end(), {"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"});
  for (const char* scratch : {"/tmp", "/var/tmp", "/dev/shm"}) {
    // A mount point must exist: the root is read-only. /dev/shm is in bwrap's own /dev.
    struct stat st {};
    if (std::strcmp(scratch, "/dev/shm") != 0 && ::stat(scratch, &st) != 0) continue;
    argv.insert(argv.end(), {"--perms", "1777", "--tmpfs", scratch});
  }
  // Folders before files, parents before what is inside them.
  std::vector<std::pair<std::string, bool>> hidden;  // path, is a folder
  for (const auto& path : options.hidden) {
    std::string p = resolved(path);
    struct stat st {};
    if (p == "/" || ::stat(p.c_str(), &st) != 0) continue;
    hidden.emplace_back(p, S_ISDIR(st.st_mode));
  }
  std::sort(hidden.begin(), hidden.end(), [](const auto& a, const auto& b) {
    if (a.second != b.second) return a.second;
    return a.first < b.first;
  });
  hidden.erase(std::unique(hidden.begin(), hidden.end()), hidden.end());
  // Hidden folders are empty and read-only, made so once the mounts under them are in
  // place; only the runner's home stays writable (an empty home of the job's own).
  const std::string home = options.home.empty() ? "" : resolved(options.home);
  for (const auto& [path, is_dir] : hidden) {
    if (is_dir) {
      argv.insert(argv.end(), {"--tmpfs", path});
      if (path != home) read_only_.push_back(path);
    } else {
      argv.insert(argv.end(), {"--ro-bind", "/dev/null", path});
    }
  }
  for (const auto& path : options.shared) {
    std::string p = resolved(path);
    argv.insert(argv.end(), {"--bind", p, p});
  }
}

std::vector<std::string> Sandbox::command(const std::string& workdir,
                                          const std::vector<std::string>& command,
                                          const std::vector<std::string>& writable) const {
  std::vector<std::string> argv = mounts_;
  argv.reserve(argv.size() + 2 * read_only_.size() + 3 * writable.size() + command.size() + 6);
  std::string work = resolved(workdir);
  argv.insert(argv.end(), {"--bind", work, work});
  for (const auto& dir : writable) {
    std::string p = resolved(dir);
    argv.insert(argv.end(), {"--bind", p, p});
  }
  for (const auto& path : read_only_) argv.insert(argv.end(), {"--remount-ro", path});
  argv.insert(argv.end(), {"--chdir", work, "--"});
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

bool searchable_by(const std::string& dir, uid_t uid, gid_t gid) {
  if (uid == 0) return true;
  fs::path path = resolved(dir);
  fs::path at = "/";
  auto can_search = [&](const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return false;
    if (st.st_uid == uid) return (st.st_mode & S_IXUSR) != 0;
    if (st.st_gid == gid) return (st.st_mode & S_IXGRP) != 0;
    return (st.st_mode & S_IXOTH) != 0;
  };
  if (!can_search(at)) return false;
  for (const auto& part : path.relative_path()) {
    at /= part;
    if (!can_search(at)) return false;
  }
  return true;
}

Result<void> chown_tree(const std::string& dir, uid_t uid, gid_t gid) {
  if (::lchown(dir.c_str(), uid, gid) != 0)
    return make_error("cannot give " + dir + " to the test user: " + std::strerror(errno));
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (::lchown(it->path().c_str(), uid, gid) != 0)
      return make_error("cannot give " + it->path().string() +
                        " to the test user: " + std::strerror(errno));
  }
  if (ec) return make_error("cannot give " + dir + " to the test user: " + ec.message());
  return {};
}

namespace {

// Lets the owner enter, list and change every folder under `dir`, as far as it can.
void open_up(const fs::path& dir) {
  // Never through a link a leftover process may have put in place of a folder.
  ::fchmodat(AT_FDCWD, dir.c_str(), 0700, AT_SYMLINK_NOFOLLOW);
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_directory(type_ec) && !it->is_symlink(type_ec)) open_up(it->path());
  }
}

}  // namespace

Result<void> remove_tree(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!ec) return {};
  // A test can take the write or search permission off a folder of its checkout.
  open_up(dir);
  ec.clear();
  fs::remove_all(dir, ec);
  if (ec) return make_error("cannot remove " + dir + ": " + ec.message());
  return {};
}

}  // namespace ci::runner
