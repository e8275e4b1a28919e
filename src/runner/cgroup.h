// A cgroup (v2) of its own for each job, when the runner has limits to set or is told to
// (--job-cgroup on), where the machine lets it make one:
// everything the test starts is in it, so that it can be killed as a whole
// (cgroup.kill) and checked empty before the result is reported, and limited
// (memory.max, cpu.max, pids.max).
//
// The jobs' cgroups are made in the runner's own cgroup. Making one needs write access
// there: root has it, another user where it was delegated to it (a systemd service with
// Delegate=yes, say). Limits also need their controllers: listed in the runner's
// cgroup.controllers and enabled in its cgroup.subtree_control, which the kernel allows
// only in a cgroup that holds no process; the runner moves itself into a child cgroup
// of its own for that, which works when it is alone in its cgroup.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "ci/result.h"

namespace ci::runner {

struct CgroupLimits {
  uint64_t memory_max = 0;  // bytes; 0: none
  double cpus = 0;          // CPUs' worth of time; 0: none
  uint64_t pids_max = 0;    // processes and threads; 0: none
  bool any() const { return memory_max > 0 || cpus > 0 || pids_max > 0; }
};

class JobCgroups {
 public:
  // Finds the runner's cgroup, checks that a job's cgroup can be made in it and, with
  // limits, that their controllers can be enabled (moving the runner into a cgroup of
  // its own if needed); an error says why not. Removes the empty cgroups that runners
  // no longer running left there.
  static Result<JobCgroups> open(const CgroupLimits& limits);

  const std::string& base() const { return base_; }
  // Makes the cgroup `name` for a job, with the limits; its path.
  Result<std::string> make(const std::string& name) const;
  // Kills everything in the cgroup at `path`, waits up to `timeout` for it to be empty
  // and removes it; an error if something is left.
  static Result<void> kill_and_remove(const std::string& path, std::chrono::milliseconds timeout);

 private:
  std::string base_;
  CgroupLimits limits_;
};

}  // namespace ci::runner
