// The dispatcher's durable state: jobs (with attempts and results) and registered
// runners. The dispatcher writes every change here before it answers OK.
#pragma once

#include <string>
#include <vector>

#include "ci/events.h"
#include "ci/result.h"
#include "dispatcher/scheduler.h"

namespace ci {

struct StoredState {
  std::vector<Job> jobs;              // by id
  std::vector<StoredRunner> runners;  // the registered runners
  std::vector<Repository> repos;      // the named repositories
  uint64_t last_seq = 0;              // the feed's newest event
};

// A read of the feed: the events after `from`, as the `events` reply carries them.
struct FeedPage {
  uint64_t oldest = 0;  // the oldest event kept (0: none yet)
  uint64_t last = 0;    // the newest event written
  std::string body;     // event lines (ci/events.h), cases of job.finished included
  uint64_t count = 0;   // events in body
};

// load and save: one thread at a time (the dispatcher's store thread, or start()
// before it). The reads of the feed and of test cases may come from other threads at
// the same time.
class Store {
 public:
  virtual ~Store() = default;
  virtual Result<StoredState> load() = 0;
  // Writes the jobs (inserted or updated), the runner and repository changes and the
  // feed's events (the cases of job.finished events into their own table) in one
  // transaction, then drops events older than the retention.
  virtual Result<void> save(const std::vector<const Job*>& jobs,
                            const std::vector<StoredRunner>& runners_added,
                            const std::vector<std::string>& runners_removed,
                            const std::vector<FeedEvent>& feed,
                            const std::vector<Repository>& repos = {}) = 0;
  // At most `max` events after `from`, and at most about `max_bytes` of them (always at
  // least one when there is one).
  virtual Result<FeedPage> read_events(uint64_t from, uint64_t max, size_t max_bytes) = 0;
  // The test cases of (job, attempt); none when there are none.
  virtual Result<std::vector<TestCase>> read_cases(JobId job, uint32_t attempt) = 0;
};

}  // namespace ci
