// The readers of the event feed (`events <from> <max> <wait-ms>`): each is answered
// from the store as soon as there are events after its `from`, or with none when its
// wait is over. One thread of its own answers all of them, so that a reader never holds
// up scheduling and many long polls cost no thread each. The newest events written are
// also kept in memory (bounded): a reader that keeps up is answered from there, without
// a read of the store, whose lock the next group commit would wait for.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "ci/clock.h"
#include "ci/events.h"
#include "ci/mutex.h"
#include "ci/protocol.h"
#include "dispatcher/store.h"

namespace ci {

class FeedHub {
 public:
  using Answer = std::function<void(const Reply&)>;
  // Readers waiting at once; one more is answered at once, with what there is.
  static constexpr size_t kMaxWaiting = 4096;
  static constexpr size_t kMaxReplyBytes = 4u << 20;
  // The newest events kept in memory: at most this many, and about this many bytes.
  static constexpr size_t kMaxRecentEvents = 2048;
  static constexpr size_t kMaxRecentBytes = 4u << 20;

  // `max_recent`: the events kept in memory (the dispatcher gives no more than its
  // retention, so that memory never answers a reader the store would send to a snapshot).
  FeedHub(Store& store, Clock& clock, size_t max_recent = kMaxRecentEvents);
  ~FeedHub();
  FeedHub(const FeedHub&) = delete;
  FeedHub& operator=(const FeedHub&) = delete;

  void start(uint64_t last_seq) EXCLUDES(mutex_);
  // Answers everyone still waiting (with what there is) and ends the thread.
  void stop() EXCLUDES(mutex_);
  // The store has the events up to `last_seq`.
  void written(uint64_t last_seq) EXCLUDES(mutex_);
  // The store has these events (in order of seq, the newest written): kept in memory
  // too, for the readers that keep up.
  void written(std::vector<FeedEvent> events) EXCLUDES(mutex_);
  uint64_t last_written() const EXCLUDES(mutex_);
  void read(const EventsRequest& request, Answer answer) EXCLUDES(mutex_);

 private:
  struct Reader {
    EventsRequest request;
    TimePoint deadline;
    Answer answer;
  };
  void loop() EXCLUDES(mutex_);
  Reply page(const EventsRequest& request) EXCLUDES(mutex_);
  // The page from memory, when it holds the events right after `request.from`.
  std::optional<Reply> recent_page(const EventsRequest& request) EXCLUDES(mutex_);

  Store& store_;
  Clock& clock_;
  const size_t max_recent_;
  mutable Mutex mutex_;
  CondVar cv_;
  uint64_t last_ GUARDED_BY(mutex_) = 0;
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::deque<Reader> readers_ GUARDED_BY(mutex_);
  // The newest events written, contiguous in seq; their estimated size.
  std::deque<std::shared_ptr<const FeedEvent>> recent_ GUARDED_BY(mutex_);
  size_t recent_bytes_ GUARDED_BY(mutex_) = 0;
  // The oldest event the store keeps, as its last read said.
  uint64_t oldest_ GUARDED_BY(mutex_) = 0;
  std::thread thread_;
};

}  // namespace ci
