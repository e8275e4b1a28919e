// A mutex, its scoped lock and a condition variable that clang's thread-safety
// analysis understands (std::mutex carries no annotations in libstdc++).
//
//   ci::Mutex mutex_;
//   int count_ GUARDED_BY(mutex_);
//   void add() EXCLUDES(mutex_) { ci::MutexLock lock(mutex_); ++count_; }
//
// A MutexLock may be unlocked and locked again (to do I/O without the lock); it
// releases the mutex at its end only if it holds it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "ci/thread_annotations.h"

namespace ci {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mutex_.lock(); }
  void unlock() RELEASE() { mutex_.unlock(); }
  // For code that holds the mutex by a contract the analysis cannot follow.
  void assert_held() const ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mutex_;
};

class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) ACQUIRE(mutex) : mutex_(mutex) { mutex_.lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mutex_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void unlock() RELEASE() {
    held_ = false;
    mutex_.unlock();
  }
  void lock() ACQUIRE() {
    mutex_.lock();
    held_ = true;
  }
  Mutex& mutex() const { return mutex_; }

 private:
  Mutex& mutex_;
  bool held_ = true;
};

// Runs `f` with a held mutex released (I/O without the lock), and takes the mutex
// again when `f` returns or throws. `f` is analysed as code holding no lock, so a
// guarded member it touches is an error.
//
//   void save() REQUIRES(mutex_) { ...; run_unlocked(mutex_, [&] { write(rows); }); ... }
//
// (A scoped unlocker object would say the same, but clang 14's analysis cannot follow
// a scope that releases a capability it did not acquire.)
template <typename F>
decltype(auto) run_unlocked(Mutex& mutex, F&& f) REQUIRES(mutex) NO_THREAD_SAFETY_ANALYSIS {
  struct Relock {
    Mutex& mutex;
    ~Relock() { mutex.lock(); }
  };
  mutex.unlock();
  Relock relock{mutex};
  return f();
}

// Waits with the lock held, as std::condition_variable does: the mutex is released
// while waiting and held again on return. Wakes may be spurious: wait in a loop.
class CondVar {
 public:
  void notify_one() { cv_.notify_one(); }
  void notify_all() { cv_.notify_all(); }

  void wait(MutexLock& lock) {
    std::unique_lock<std::mutex> held(lock.mutex().mutex_, std::adopt_lock);
    cv_.wait(held);
    held.release();
  }
  // False when `deadline` (of the real steady clock) passed.
  bool wait_until(MutexLock& lock, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> held(lock.mutex().mutex_, std::adopt_lock);
    bool woken = cv_.wait_until(held, deadline) == std::cv_status::no_timeout;
    held.release();
    return woken;
  }
  // `done` runs with the lock held: give a lambda that reads guarded members
  // REQUIRES(that mutex). (The analysis cannot see that the lock held here is it.)
  template <typename Predicate>
  void wait(MutexLock& lock, Predicate done) NO_THREAD_SAFETY_ANALYSIS {
    while (!done()) wait(lock);
  }

 private:
  std::condition_variable cv_;
};

}  // namespace ci
