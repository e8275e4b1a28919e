// What run_command and ChildProcess share to start a process with posix_spawn.
// Internal to ci_common.
#pragma once

#include <spawn.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "ci/fd.h"

namespace ci::spawn {

// Pointers to the strings of `v` for an argv or envp, ended by a null pointer.
std::vector<char*> c_strings(const std::vector<std::string>& v);

// A descriptor for the process to get a pidfd of; invalid where the kernel has none.
UniqueFd pidfd_open(pid_t pid);

// A descriptor to hand to a child, moved to 10 or above if it is lower, so that
// setting up the child's 0 to 3 cannot overwrite it. Invalid on failure (errno says
// why); `fd` is given up either way.
UniqueFd keep_high(UniqueFd fd);

// strerror's text for an error number that posix_spawn returns rather than sets.
std::string errno_text(int error);

// posix_spawn's attributes and file actions, released on scope exit.
class SpawnSetup {
 public:
  SpawnSetup();
  ~SpawnSetup();
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

}  // namespace ci::spawn
