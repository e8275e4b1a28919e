// The dispatcher's line to its runners: a pool of connections (one per runner in the
// usual case, more while several threads talk to one runner) and the two calls it
// makes, ping and runtest, with their answers as types. Thread-safe; no scheduler.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "ci/mutex.h"
#include "ci/net.h"
#include "dispatcher/scheduler.h"

namespace ci {

class RunnerLink {
 public:
  struct Options {
    std::string token;  // non-empty: authenticate to the runners with it
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds io_timeout{5000};
  };
  explicit RunnerLink(Options options) : options_(std::move(options)) {}

  struct PingAnswer {
    enum class Kind {
      Report,     // it answered: `report` says what it runs
      SlotsFull,  // it is there, out of connection slots: nothing learned, not a miss
      Missed,     // no answer (why says what happened)
    };
    Kind kind = Kind::Missed;
    RunnerReport report;
    std::string why;
  };
  PingAnswer ping(const std::string& runner) EXCLUDES(mutex_);

  struct RuntestAnswer {
    enum class Kind { Accepted, Busy, Rejected, Unreachable };
    Kind kind = Kind::Unreachable;
    std::string why;  // Rejected, Unreachable
  };
  RuntestAnswer runtest(const Offer& offer) EXCLUDES(mutex_);

  // Tells a runner to stop (job, attempt): OK, or why not.
  Result<void> cancel(const std::string& runner, JobId job, uint32_t attempt) EXCLUDES(mutex_);

  // Closes the connections to runners not in `runners` (they are gone).
  void keep_only(const std::set<std::string>& runners) EXCLUDES(mutex_);

 private:
  std::unique_ptr<LineClient> take(const std::string& runner) EXCLUDES(mutex_);
  void give(const std::string& runner, std::unique_ptr<LineClient> client) EXCLUDES(mutex_);

  const Options options_;
  Mutex mutex_;
  std::multimap<std::string, std::unique_ptr<LineClient>> clients_ GUARDED_BY(mutex_);
};

}  // namespace ci
