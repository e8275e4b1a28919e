// What runner.cpp and runner_liaison.cpp share besides the Runner class itself.
#pragma once

#include <cstddef>
#include <string>

#include "ci/mutex.h"
#include "ci/protocol.h"
#include "ci/thread_annotations.h"
#include "runner/result_spool.h"

namespace ci::runner {

// After `freed` bytes of a job's output are let go: gives the free pages malloc keeps
// back to the system when there are many. `mutex` is released meanwhile.
void release_memory(size_t freed, Mutex& mutex) REQUIRES(mutex);

// "job 7 attempt 1 commit <sha>", for the log.
std::string describe(const RuntestRequest& job);
// "job 7 attempt 1", for the log.
std::string describe(const SpooledResult& result);

}  // namespace ci::runner
