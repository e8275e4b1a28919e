#include "dispatcher/feed_hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ci {

FeedHub::FeedHub(Store& store, Clock& clock) : store_(store), clock_(clock) {}

FeedHub::~FeedHub() { stop(); }

void FeedHub::start(uint64_t last_seq) {
  {
    MutexLock lock(mutex_);
    last_ = last_seq;
  }
  thread_ = std::thread([this] { loop(); });
}

void FeedHub::stop() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Never started, or stopped with readers still there: they hear what there is.
  std::deque<Reader> left;
  {
    MutexLock lock(mutex_);
    left.swap(readers_);
  }
  for (Reader& r : left) r.answer(page(r.request));
}

void FeedHub::written(uint64_t last_seq) {
  {
    MutexLock lock(mutex_);
    if (last_seq <= last_) return;
    last_ = last_seq;
  }
  cv_.notify_all();
}

uint64_t FeedHub::last_written() const {
  MutexLock lock(mutex_);
  return last_;
}

void FeedHub::read(const EventsRequest& request, Answer answer) {
  {
    MutexLock lock(mutex_);
    if (!stopping_ && readers_.size() < kMaxWaiting) {
      auto wait = std::chrono::milliseconds(std::min(request.wait_ms, kMaxEventsWaitMs));
      readers_.push_back({request, clock_.now() + wait, std::move(answer)});
      cv_.notify_all();
      return;
    }
  }
  answer(page(request));
}

Reply FeedHub::page(const EventsRequest& request) {
  auto read = store_.read_events(request.from, request.max, kMaxReplyBytes);
  if (!read) {
    spdlog::error("cannot read the event feed: {}", read.error());
    return Reply::err("cannot read the event feed: " + read.error());
  }
  Reply reply = Reply::ok_with_body(std::move(read->body));
  reply.args = {std::to_string(read->oldest), std::to_string(read->last)};
  return reply;
}

void FeedHub::loop() {
  MutexLock lock(mutex_);
  while (!stopping_) {
    // The readers that can be answered now: events after their `from`, or time is up.
    TimePoint now = clock_.now();
    TimePoint next = TimePoint::max();
    std::vector<Reader> due;
    for (auto it = readers_.begin(); it != readers_.end();) {
      if (last_ > it->request.from || it->request.wait_ms == 0 || it->deadline <= now) {
        due.push_back(std::move(*it));
        it = readers_.erase(it);
      } else {
        next = std::min(next, it->deadline);
        ++it;
      }
    }
    if (!due.empty()) {
      run_unlocked(mutex_, [&] {
        for (Reader& r : due) r.answer(page(r.request));
      });
      continue;
    }
    if (next == TimePoint::max()) {
      cv_.wait(lock);
    } else {
      clock_.wait_until(cv_, lock, next);
    }
  }
}

}  // namespace ci
