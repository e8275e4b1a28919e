// /metrics: Prometheus text (prometheus-cpp's TextSerializer). Counts of jobs and
// runners come from the read model at each scrape; the histograms are observed as the
// follower applies job.started and job.finished events (since this process started);
// the lag is how far the read model is behind the feed, in events and in seconds.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ci/mutex.h"
#include "reporter/queries.h"

namespace ci::reporter {

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // From the follower: a job that started `wait_ms` after it was queued, one that ran
  // for `duration_ms`.
  void observe_start(int64_t wait_ms) EXCLUDES(mutex_);
  void observe_duration(uint64_t duration_ms) EXCLUDES(mutex_);
  // The feed's newest seq as the last reply said, and the time (unix ms) of the oldest
  // event not yet applied (0: none pending).
  void feed_position(uint64_t feed_last_seq, int64_t oldest_pending_ms) EXCLUDES(mutex_);

  // The text for a scrape, with the counts read now; `now_ms`: unix ms.
  std::string scrape(const Counts& counts, int64_t now_ms) EXCLUDES(mutex_);

 private:
  struct Impl;
  Mutex mutex_;
  std::unique_ptr<Impl> impl_ PT_GUARDED_BY(mutex_);
};

}  // namespace ci::reporter
