// Group commit: the dispatcher's store thread.
//
// Every change to the scheduler is followed by a ticket (after_save); the store thread
// writes all the changes made so far in one transaction and then calls back every
// ticket up to that point. So a peer hears OK only once its change is in the store,
// and changes that arrive together share one write. A change no one waits for
// (note_change) is written with the next batch, and at the latest kLazyWriteDelay
// later on the injected clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

#include "ci/clock.h"
#include "ci/events.h"
#include "ci/result.h"
#include "dispatcher/guarded_scheduler.h"
#include "dispatcher/result_writer.h"
#include "dispatcher/store.h"

namespace ci {

class GroupCommitter {
 public:
  using Saved = std::function<void(const Result<void>&)>;
  static constexpr std::chrono::milliseconds kLazyWriteDelay{20};

  GroupCommitter(GuardedScheduler& state, Store& store, const ResultWriter& writer, Clock& clock);
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Writes what is pending now, on the caller's thread: for start-up, before start().
  Result<void> save_all() REQUIRES(state_.mutex);
  void start();
  // No one but the store thread changes anything from now on: it writes what is left
  // (and what the callbacks it runs change) and ends; waiters not written hear an error.
  void finish() EXCLUDES(state_.mutex);

  // `saved` runs on the store thread, with the mutex held, once every change made so
  // far is durable, or failed to become so.
  void after_save(Saved saved) REQUIRES(state_.mutex);
  void note_change() REQUIRES(state_.mutex);
  // Called on the store thread, with the mutex held, with the feed events each write
  // made durable (in order of seq). Set before start().
  void on_feed_written(std::function<void(std::vector<FeedEvent> events)> f) {
    on_feed_written_ = std::move(f);
  }
  using Attempts = std::vector<std::pair<JobId, uint32_t>>;
  // Called on the store thread, without the mutex, with the attempts that ended
  // without a result (Scheduler::take_ended_attempts). Set before start().
  void on_attempts_ended(std::function<void(const Attempts& ended)> f) {
    on_attempts_ended_ = std::move(f);
  }

 private:
  struct Waiter {
    uint64_t ticket;
    Saved saved;
  };

  void loop() EXCLUDES(state_.mutex);
  // Writes the scheduler's changes, logs its events, records the jobs it gave up on
  // and hands on the attempts that ended, releasing the mutex while it writes. `more`: recording
  // gave-up jobs made new changes.
  Result<void> save_changes(bool* more) REQUIRES(state_.mutex);

  GuardedScheduler& state_;
  Store& store_;
  const ResultWriter& writer_;
  Clock& clock_;
  CondVar cv_;
  bool finishing_ GUARDED_BY(state_.mutex) = false;
  uint64_t change_seq_ GUARDED_BY(state_.mutex) = 0;  // tickets handed out
  uint64_t saved_seq_ GUARDED_BY(state_.mutex) = 0;   // tickets written (or failed)
  std::deque<Waiter> waiters_ GUARDED_BY(state_.mutex);
  bool lazy_pending_ GUARDED_BY(state_.mutex) = false;  // changes no one waits for
  TimePoint lazy_due_ GUARDED_BY(state_.mutex){};
  std::function<void(std::vector<FeedEvent>)> on_feed_written_;
  std::function<void(const Attempts&)> on_attempts_ended_;
  std::thread thread_;
};

}  // namespace ci
