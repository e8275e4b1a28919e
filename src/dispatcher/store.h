// The dispatcher's durable state: jobs (with attempts and results) and registered
// runners. The dispatcher writes every change here before it answers OK.
#pragma once

#include <string>
#include <vector>

#include "ci/result.h"
#include "dispatcher/scheduler.h"

namespace ci {

struct StoredState {
  std::vector<Job> jobs;             // by id
  std::vector<std::string> runners;  // addresses of the registered runners
};

// Thread-compatible: one thread at a time (the dispatcher's store thread, or start()
// before it).
class Store {
 public:
  virtual ~Store() = default;
  virtual Result<StoredState> load() = 0;
  // Writes the jobs (inserted or updated) and the runner changes in one transaction.
  virtual Result<void> save(const std::vector<const Job*>& jobs,
                            const std::vector<std::string>& runners_added,
                            const std::vector<std::string>& runners_removed) = 0;
};

}  // namespace ci
