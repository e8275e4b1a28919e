// The chapter's redistribution thread, as a few threads: they hand the scheduler's
// offers to runners (runtest) and tell the scheduler how each went.
//
// An offer goes out only once the write that holds its attempt is durable (so a runner
// never runs an attempt the store does not know): plan() takes every offer the
// scheduler can make and files each behind a ticket of the group committer; usually
// that is the write of the change that made it possible, so a dispatch or a result and
// the next offer share one transaction.
#pragma once

#include <deque>
#include <thread>
#include <vector>

#include "ci/clock.h"
#include "dispatcher/group_committer.h"
#include "dispatcher/guarded_scheduler.h"
#include "dispatcher/runner_link.h"

namespace ci {

class OfferSender {
 public:
  OfferSender(GuardedScheduler& state, GroupCommitter& committer, RunnerLink& link, Clock& clock);
  ~OfferSender();
  OfferSender(const OfferSender&) = delete;
  OfferSender& operator=(const OfferSender&) = delete;

  void start(size_t threads);
  // Ends the threads; offers not sent, and those still waiting for their write, go
  // back to the queue (as if the runner had been busy) and that is written last.
  void stop() EXCLUDES(state_.mutex);

  void plan() REQUIRES(state_.mutex);

 private:
  void loop() EXCLUDES(state_.mutex);
  void written(Offer offer, const Result<void>& saved) REQUIRES(state_.mutex);

  GuardedScheduler& state_;
  GroupCommitter& committer_;
  RunnerLink& link_;
  Clock& clock_;
  CondVar cv_;  // an offer may be sent
  bool stopping_ GUARDED_BY(state_.mutex) = false;
  std::deque<Offer> sendable_ GUARDED_BY(state_.mutex);  // written, not sent yet
  std::vector<std::thread> threads_;
};

}  // namespace ci
