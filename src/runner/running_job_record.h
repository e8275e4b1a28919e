// A note on disk of the process group of the test the runner is running. The test's
// guard kills the group when the runner dies; if the guard died too (SIGKILL to both),
// the runner's next start reads the note and kills what is left.
//
// A process group id can be reused by an unrelated program once the group is gone, so
// a recorded group is killed only while one of its processes still carries the job's
// CI_JOB_ID, CI_ATTEMPT and CI_COMMIT in its environment.
//
// Not thread-safe: one runner's worker writes it, start() reads it before.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "ci/protocol.h"
#include "ci/result.h"

namespace ci::runner {

struct LeftoverJob {
  pid_t group = 0;
  JobId job = 0;
  uint32_t attempt = 0;
  size_t processes = 0;  // of the job's, found alive and killed
};

class RunningJobRecord {
 public:
  explicit RunningJobRecord(std::string path);

  Result<void> write(pid_t group, const RuntestRequest& job) const;
  void clear() const;
  // Kills (SIGKILL) the recorded group if the job's processes are still in it, and
  // forgets the record. nullopt when nothing was recorded or nothing of it was left.
  std::optional<LeftoverJob> kill_leftovers() const;

 private:
  std::string path_;
};

// Ids of the live processes (zombies excluded) in `group`, read from /proc.
std::vector<pid_t> processes_in_group(pid_t group);

}  // namespace ci::runner
