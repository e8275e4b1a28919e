// When the runner (re)registers with the dispatcher: at start; after a failed attempt,
// with capped exponential backoff; and whenever the dispatcher has been silent for
// longer than a limit, because a dispatcher that restarted has forgotten its runners
// and will not ping them. Plain logic: the caller passes the time in and does the I/O.
// Not thread-safe: the caller guards it.
#pragma once

#include <chrono>

#include "ci/clock.h"
#include "runner/backoff.h"

namespace ci::runner {

class RegistrationSchedule {
 public:
  using TimePoint = ci::TimePoint;  // of the runner's Clock

  // Due at once (`start`), not yet registered.
  RegistrationSchedule(TimePoint start, std::chrono::milliseconds silence_limit, Backoff backoff);

  bool due(TimePoint now) const { return now >= next_attempt(); }
  TimePoint next_attempt() const;
  bool registered() const { return registered_; }

  // A message came from the dispatcher. While not registered, that means it is up
  // again: the next attempt is due at once rather than at the end of the backoff.
  void heard(TimePoint now);
  void succeeded(TimePoint now);
  // Returns true for the first failure of a streak, so that a dispatcher that is down
  // is reported once rather than at every retry.
  bool failed(TimePoint now);

 private:
  std::chrono::milliseconds silence_limit_;
  Backoff backoff_;
  bool registered_ = false;
  bool failing_ = false;
  TimePoint retry_at_;
  TimePoint last_heard_;
};

}  // namespace ci::runner
