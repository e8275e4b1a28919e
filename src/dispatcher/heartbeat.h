// The chapter's heartbeat thread: every interval (on the injected clock) it pings the
// runners not heard from within the interval, and tells the scheduler who answered
// and what they run; a runner that misses enough pings in a row is dropped and its job
// requeued by the scheduler.
#pragma once

#include <chrono>
#include <thread>

#include "ci/clock.h"
#include "dispatcher/group_committer.h"
#include "dispatcher/guarded_scheduler.h"
#include "dispatcher/offer_sender.h"
#include "dispatcher/runner_link.h"

namespace ci {

class Heartbeat {
 public:
  Heartbeat(GuardedScheduler& state, GroupCommitter& committer, OfferSender& offers,
            RunnerLink& link, Clock& clock, std::chrono::milliseconds interval);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  void start();
  void stop() EXCLUDES(state_.mutex);

 private:
  void loop() EXCLUDES(state_.mutex);
  // One round: the pings, then what they said, applied under the mutex.
  void round() EXCLUDES(state_.mutex);

  GuardedScheduler& state_;
  GroupCommitter& committer_;
  OfferSender& offers_;
  RunnerLink& link_;
  Clock& clock_;
  const std::chrono::milliseconds interval_;
  CondVar cv_;
  bool stopping_ GUARDED_BY(state_.mutex) = false;
  std::thread thread_;
};

}  // namespace ci
