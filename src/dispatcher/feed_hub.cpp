#include "dispatcher/feed_hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ci {
namespace {

// About the memory an event takes (its strings and cases), for the bound.
size_t estimated_size(const FeedEvent& e) {
  size_t n = sizeof(FeedEvent) + e.runner.size() + e.job.commit.size() + e.job.branch.size() +
             e.job.commit_info.author.size() + e.job.commit_info.email.size() +
             e.job.commit_info.subject.size() + e.job.state.size() + e.job.runner.size() +
             e.job.reason.size();
  for (const TestCase& c : e.cases) n += sizeof(TestCase) + c.name.size() + c.message.size();
  return n;
}

}  // namespace

FeedHub::FeedHub(Store& store, Clock& clock, size_t max_recent)
    : store_(store), clock_(clock), max_recent_(std::min(max_recent, kMaxRecentEvents)) {}

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

void FeedHub::written(std::vector<FeedEvent> events) {
  if (events.empty()) return;
  {
    MutexLock lock(mutex_);
    for (FeedEvent& e : events) {
      if (e.seq <= last_ && !recent_.empty() && e.seq <= recent_.back()->seq) continue;
      // Only a run without a gap is kept: a gap starts it anew.
      if (!recent_.empty() && e.seq != recent_.back()->seq + 1) {
        recent_.clear();
        recent_bytes_ = 0;
      }
      recent_bytes_ += estimated_size(e);
      recent_.push_back(std::make_shared<const FeedEvent>(std::move(e)));
      last_ = std::max(last_, recent_.back()->seq);
    }
    while (!recent_.empty() && (recent_.size() > max_recent_ || recent_bytes_ > kMaxRecentBytes)) {
      recent_bytes_ -= estimated_size(*recent_.front());
      recent_.pop_front();
    }
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

std::optional<Reply> FeedHub::recent_page(const EventsRequest& request) {
  std::vector<std::shared_ptr<const FeedEvent>> events;
  uint64_t oldest = 0, last = 0;
  {
    MutexLock lock(mutex_);
    if (recent_.empty() || request.from + 1 < recent_.front()->seq ||
        request.from > recent_.back()->seq || recent_.back()->seq != last_)
      return std::nullopt;
    auto it =
        recent_.begin() + static_cast<std::ptrdiff_t>(request.from + 1 - recent_.front()->seq);
    for (; it != recent_.end() && events.size() < request.max; ++it) events.push_back(*it);
    oldest = oldest_ ? std::min(oldest_, recent_.front()->seq) : recent_.front()->seq;
    last = last_;
  }
  // Serialized as the store's read gives them, without the lock.
  std::string body;
  for (const auto& e : events) {
    if (!body.empty() && body.size() >= kMaxReplyBytes) break;
    body += serialize_event(*e);
  }
  Reply reply = Reply::ok_with_body(std::move(body));
  reply.args = {std::to_string(oldest), std::to_string(last)};
  return reply;
}

Reply FeedHub::page(const EventsRequest& request) {
  if (auto recent = recent_page(request)) return std::move(*recent);
  auto read = store_.read_events(request.from, request.max, kMaxReplyBytes);
  if (!read) {
    spdlog::error("cannot read the event feed: {}", read.error());
    return Reply::err("cannot read the event feed: " + read.error());
  }
  {
    MutexLock lock(mutex_);
    oldest_ = read->oldest;
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
