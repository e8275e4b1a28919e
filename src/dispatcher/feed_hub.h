// The readers of the event feed (`events <from> <max> <wait-ms>`): each is answered
// from the store as soon as there are events after its `from`, or with none when its
// wait is over. One thread of its own reads the store for all of them, so that a
// reader never holds up scheduling and many long polls cost no thread each.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

#include "ci/clock.h"
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

  FeedHub(Store& store, Clock& clock);
  ~FeedHub();
  FeedHub(const FeedHub&) = delete;
  FeedHub& operator=(const FeedHub&) = delete;

  void start(uint64_t last_seq) EXCLUDES(mutex_);
  // Answers everyone still waiting (with what there is) and ends the thread.
  void stop() EXCLUDES(mutex_);
  // The store has the events up to `last_seq`.
  void written(uint64_t last_seq) EXCLUDES(mutex_);
  uint64_t last_written() const EXCLUDES(mutex_);
  void read(const EventsRequest& request, Answer answer) EXCLUDES(mutex_);

 private:
  struct Reader {
    EventsRequest request;
    TimePoint deadline;
    Answer answer;
  };
  void loop() EXCLUDES(mutex_);
  Reply page(const EventsRequest& request);

  Store& store_;
  Clock& clock_;
  mutable Mutex mutex_;
  CondVar cv_;
  uint64_t last_ GUARDED_BY(mutex_) = 0;
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::deque<Reader> readers_ GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace ci
