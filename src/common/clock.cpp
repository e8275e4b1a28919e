#include "ci/clock.h"

#include <algorithm>

namespace ci {

namespace {

class RealClock : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  void wait_until(CondVar& cv, MutexLock& lock, TimePoint deadline) override {
    cv.wait_until(lock, deadline);
  }
};

}  // namespace

Clock& Clock::real() {
  static RealClock clock;
  return clock;
}

FakeClock::FakeClock() : now_(TimePoint{} + std::chrono::hours(24 * 365)) {}

TimePoint FakeClock::now() const {
  MutexLock lock(mutex_);
  return now_;
}

size_t FakeClock::waiters() const {
  MutexLock lock(mutex_);
  return waiters_.size();
}

bool FakeClock::waiting_until(TimePoint deadline) const {
  MutexLock lock(mutex_);
  return std::any_of(waiters_.begin(), waiters_.end(),
                     [&](const Waiter& w) { return w.deadline == deadline; });
}

void FakeClock::wait_until(CondVar& cv, MutexLock& lock, TimePoint deadline) {
  uint64_t id = 0;
  {
    // Checking the time and joining the waiters is one step, so an advance() either
    // comes before it (and the deadline has passed) or sees this waiter.
    MutexLock own(mutex_);
    if (now_ >= deadline) return;
    id = next_id_++;
    waiters_.push_back({&cv, &lock.mutex(), deadline, id});
  }
  cv.wait(lock);
  MutexLock own(mutex_);
  std::erase_if(waiters_, [id](const Waiter& w) { return w.id == id; });
}

void FakeClock::advance(std::chrono::steady_clock::duration d) {
  std::vector<Waiter> due;
  {
    MutexLock lock(mutex_);
    now_ += d;
    const TimePoint now = now_;
    // The woken leave the list at once, so that waiters() counts only those still
    // asleep once this returns.
    for (const auto& w : waiters_)
      if (w.deadline <= now) due.push_back(w);
    std::erase_if(waiters_, [now](const Waiter& w) { return w.deadline <= now; });
  }
  for (const auto& w : due) {
    // Taking the waiter's mutex waits until it is inside its wait: the notification
    // cannot fall between its look at the time and its sleep.
    w.mutex->lock();
    w.mutex->unlock();
    w.cv->notify_all();
  }
}

}  // namespace ci
