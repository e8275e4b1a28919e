// The box a repository's tests run in. A test is code the runner did not write: with
// the sandbox on, it runs under bubblewrap (bwrap) in namespaces of its own:
//
// - mounts: the whole system read-only, its checkout and a private /tmp, /var/tmp and
//   /dev/shm writable, a /dev and /proc of its own, and the runner's secrets (state
//   folder with its spool, clone, token file, anything listed) hidden under empty
//   read-only folders or an empty file, and its home under an empty writable one;
// - processes: a PID namespace, so that when the test's main process ends every process
//   it started ends too, whether it left the process group (setsid) or not;
// - optionally no network (a loopback of its own only).
//
// A runner running as root never runs a test as root: the guard drops to the test user
// first (ci/process.h, CommandSpec::run_as_user), and bwrap then runs unprivileged.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "ci/process.h"
#include "ci/result.h"

namespace ci::runner {

// The user tests run as when the runner runs as root.
struct TestUser {
  bool set = false;  // false: tests run as the runner's own user
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  std::string home;
};

// The user named `name` (or a numeric uid), from the password database; root refused.
Result<TestUser> find_test_user(const std::string& name);

// Has the command's guard drop to `user` before starting it, when it is set.
void run_as(const TestUser& user, CommandSpec* spec);

struct SandboxOptions {
  bool enabled = true;
  bool network = true;  // false: the test gets a network namespace with loopback only
  std::string bwrap;    // absolute path of bwrap
  // Folders and files the test must not see: a folder is covered by an empty one, a
  // file by an empty file. Paths that do not exist are skipped.
  std::vector<std::string> hidden;
  // The runner's home (HOME), if it is among `hidden`: covered by an empty folder the
  // test may write to, its own for the job.
  std::string home;
  // Folders every test may read and write, at the same path (a cache shared between
  // jobs, say): what one job leaves there, the next one sees.
  std::vector<std::string> shared;
};

// The absolute path of `program`, looked up in the runner's PATH.
Result<std::string> find_program(const std::string& program);

// The sandbox's command line, worked out once: its paths resolved and checked when it
// is made (at the runner's start), so that a job only adds its checkout.
class Sandbox {
 public:
  explicit Sandbox(const SandboxOptions& options);
  // The command line that runs `command` in the sandbox, in `workdir` (its checkout,
  // writable, at the same path inside), with the folders `writable` (the job's own,
  // such as its reports folder) writable at their paths too.
  std::vector<std::string> command(const std::string& workdir,
                                   const std::vector<std::string>& command,
                                   const std::vector<std::string>& writable = {}) const;

 private:
  std::vector<std::string> mounts_;     // bwrap and its options up to the checkout
  std::vector<std::string> read_only_;  // hidden folders, made read-only after it
};

// True when a process of `uid`/`gid` (no supplementary groups) can search every folder
// from / down to `dir`, from their permission bits (ACLs aside).
bool searchable_by(const std::string& dir, uid_t uid, gid_t gid);

// Gives every file and folder under `dir` (itself included, symbolic links themselves)
// to `uid`/`gid`.
Result<void> chown_tree(const std::string& dir, uid_t uid, gid_t gid);

// Removes `dir` and everything in it, even folders a test made unreadable or
// unwritable. Nothing to remove is no error.
Result<void> remove_tree(const std::string& dir);

}  // namespace ci::runner
