// The scheduler and the one mutex every thread of the dispatcher takes to reach it.
// The collaborators (request handler, group committer, offer sender, heartbeat) share
// this one object; each member of theirs that this mutex protects says so.
#pragma once

#include "ci/mutex.h"
#include "dispatcher/scheduler.h"

namespace ci {

struct GuardedScheduler {
  explicit GuardedScheduler(Scheduler::Options options) : scheduler(options) {}

  Mutex mutex;
  Scheduler scheduler GUARDED_BY(mutex);
};

}  // namespace ci
