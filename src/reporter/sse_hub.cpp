#include "reporter/sse_hub.h"

#include <microhttpd.h>

#include <algorithm>
#include <cstring>

namespace ci::reporter {

namespace {

// Bytes a stream may have waiting; past them its client is taken for one that stopped
// reading (the connection timeout would close it too, but memory must not wait for it).
constexpr size_t kMaxPending = 4u << 20;

std::string message(uint64_t seq, const std::string& kind, const std::string& data) {
  return "id: " + std::to_string(seq) + "\nevent: " + kind + "\ndata: " + data + "\n\n";
}

}  // namespace

SseHub::SseHub(uint64_t base_seq, size_t keep)
    : keep_(keep), base_seq_(base_seq), last_seq_(base_seq) {}

SseHub::~SseHub() { close(); }

void SseHub::publish(uint64_t seq, const std::string& kind, const std::string& data) {
  MutexLock lock(mutex_);
  if (seq <= last_seq_) return;
  last_seq_ = seq;
  ring_.push_back({seq, message(seq, kind, data)});
  if (ring_.size() > keep_) ring_.pop_front();
  for (Stream* s : streams_) queue_new(*s);
  wake_all();
}

void SseHub::reset(uint64_t seq) {
  MutexLock lock(mutex_);
  ring_.clear();
  base_seq_ = last_seq_ = std::max(last_seq_, seq);
  for (Stream* s : streams_) {
    append(*s, message(last_seq_, "reset", "{}"));
    s->after = last_seq_;
  }
  wake_all();
}

void SseHub::keepalive() {
  MutexLock lock(mutex_);
  for (Stream* s : streams_) append(*s, ":\n\n");
  wake_all();
}

void SseHub::close() {
  MutexLock lock(mutex_);
  closed_ = true;
  wake_all();
}

size_t SseHub::streams() {
  MutexLock lock(mutex_);
  return streams_.size();
}

void SseHub::queue_new(Stream& s) {
  // Events the ring no longer holds (or never held): the client reloads instead.
  bool gap = s.after < base_seq_ || (!ring_.empty() && s.after + 1 < ring_.front().seq);
  if (gap) {
    append(s, message(last_seq_, "reset", "{}"));
    s.after = last_seq_;
    return;
  }
  auto first = std::upper_bound(ring_.begin(), ring_.end(), s.after,
                                [](uint64_t seq, const Event& e) { return seq < e.seq; });
  for (auto it = first; it != ring_.end(); ++it) append(s, it->text);
  s.after = std::max(s.after, last_seq_);
}

void SseHub::append(Stream& s, const std::string& text) {
  if (s.overflowed) return;
  if (s.pending.size() + text.size() > kMaxPending) {
    s.overflowed = true;
    s.pending.clear();
    return;
  }
  s.pending += text;
}

void SseHub::wake_all() {
  for (Stream* s : streams_) {
    if (!s->suspended) continue;
    s->suspended = false;
    MHD_resume_connection(s->connection);
  }
}

MHD_Response* SseHub::open(MHD_Connection* connection, bool has_last_id, uint64_t last_event_id) {
  MutexLock lock(mutex_);
  if (closed_) return nullptr;
  auto* s = new Stream{this, connection, has_last_id ? last_event_id : last_seq_, "", false};
  // The first bytes go at once, so that the client has the headers without waiting
  // for an event.
  s->pending = "retry: 2000\n\n";
  if (has_last_id) queue_new(*s);
  MHD_Response* response =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, &SseHub::read, s, &free_stream);
  if (!response) {
    delete s;
    return nullptr;
  }
  streams_.insert(s);
  return response;
}

ssize_t SseHub::read(void* cls, uint64_t, char* buf, size_t max) {
  auto* s = static_cast<Stream*>(cls);
  SseHub& hub = *s->hub;
  MutexLock lock(hub.mutex_);
  if (s->overflowed) return MHD_CONTENT_READER_END_WITH_ERROR;
  if (!s->pending.empty()) {
    size_t n = std::min(max, s->pending.size());
    std::memcpy(buf, s->pending.data(), n);
    s->pending.erase(0, n);
    return static_cast<ssize_t>(n);
  }
  if (hub.closed_) return MHD_CONTENT_READER_END_OF_STREAM;
  // Nothing to send: off the event loop until publish(), keepalive() or close().
  s->suspended = true;
  MHD_suspend_connection(s->connection);
  return 0;
}

void SseHub::free_stream(void* cls) {
  auto* s = static_cast<Stream*>(cls);
  {
    MutexLock lock(s->hub->mutex_);
    s->hub->streams_.erase(s);
  }
  delete s;
}

}  // namespace ci::reporter
