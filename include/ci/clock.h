// The daemons' view of time, injected so that tests control it (as LevelDB's Env
// does): every "now", every timed wait of a daemon's threads and every deadline they
// compute goes through a Clock. The daemons use the real one; tests use FakeClock and
// move time on by hand, so heartbeats, timeouts and backoff are tested without sleeps.
//
// Network timeouts inside Asio (idle connections, connect and I/O deadlines) and the
// test timeout of a child process stay on real time: they guard real sockets and
// processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "ci/mutex.h"

namespace ci {

using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // Waits on `cv` with `lock` held until notified or until `deadline` on this clock,
  // whichever is first; may wake spuriously. Callers wait in a loop on their condition.
  virtual void wait_until(CondVar& cv, MutexLock& lock, TimePoint deadline) = 0;

  // The steady clock of the machine.
  static Clock& real();
};

// Time that moves only when a test says so. Thread-safe. A thread waiting in
// wait_until wakes when advance() takes the time past its deadline.
class FakeClock : public Clock {
 public:
  // Starts at an arbitrary, fixed point far from the epoch.
  FakeClock();
  TimePoint now() const override;
  void wait_until(CondVar& cv, MutexLock& lock, TimePoint deadline) override;

  // Moves time on by `d` and wakes the waiters whose deadline it reached. Call it
  // holding no mutex that a waiter uses, and not while the owner of a waiting thread's
  // mutex and condition variable is being destroyed (stop a daemon after advancing it).
  void advance(std::chrono::steady_clock::duration d);
  // Threads waiting in wait_until now, and whether one waits for exactly `deadline`:
  // for tests to know that a thread has gone back to sleep.
  size_t waiters() const;
  bool waiting_until(TimePoint deadline) const;

 private:
  struct Waiter {
    CondVar* cv;
    Mutex* mutex;
    TimePoint deadline;
    uint64_t id;
  };
  mutable Mutex mutex_;
  TimePoint now_ GUARDED_BY(mutex_);
  std::vector<Waiter> waiters_ GUARDED_BY(mutex_);
  uint64_t next_id_ GUARDED_BY(mutex_) = 0;
};

}  // namespace ci
