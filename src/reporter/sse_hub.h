// The event streams of /api/events (server-sent events), many on one HTTP thread: a
// stream with nothing to send is suspended (MHD_suspend_connection), so that it costs
// no thread and no polling, and is resumed when an event is published for it.
//
// libmicrohttpd's rules, which this follows: a connection may be suspended only from
// its access handler or from its own response's content reader (so every stream has a
// response of its own); a suspended connection neither times out nor notices its peer
// going, so keepalive() resumes all of them now and then to write a comment line (a
// peer that went is found by the failing write and its stream freed); and the daemon
// must not be stopped with a connection suspended, so close() ends and resumes all
// streams first. Suspending and resuming both happen under the hub's mutex, so a
// resume can never come before the suspend it answers.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <set>
#include <string>

#include "ci/mutex.h"

struct MHD_Connection;
struct MHD_Response;

namespace ci::reporter {

class SseHub {
 public:
  // Keeps the last `keep` events for streams that reconnect with a Last-Event-ID.
  // `base_seq`: the feed's seq when the hub started (events up to it were never
  // published here).
  explicit SseHub(uint64_t base_seq = 0, size_t keep = 4096);
  ~SseHub();
  SseHub(const SseHub&) = delete;
  SseHub& operator=(const SseHub&) = delete;

  // One event: `kind` its name (job.finished, ...), `data` one line of JSON.
  void publish(uint64_t seq, const std::string& kind, const std::string& data) EXCLUDES(mutex_);
  // The read model was rebuilt from a snapshot at `seq`: each stream is sent a
  // "reset" event (a page reloads what it shows) and goes on from there.
  void reset(uint64_t seq) EXCLUDES(mutex_);
  // A comment line to every stream, waking the suspended ones.
  void keepalive() EXCLUDES(mutex_);
  // Ends every stream and refuses new ones. Idempotent.
  void close() EXCLUDES(mutex_);

  // A response streaming events after `last_event_id` (when the client sent one)
  // on `connection`; nullptr when closed.
  MHD_Response* open(MHD_Connection* connection, bool has_last_id, uint64_t last_event_id)
      EXCLUDES(mutex_);
  size_t streams() EXCLUDES(mutex_);

 private:
  struct Event {
    uint64_t seq;
    std::string text;  // the whole SSE message
  };
  struct Stream {
    SseHub* hub;
    MHD_Connection* connection;
    uint64_t after;       // the last seq queued for it
    std::string pending;  // bytes to send
    bool suspended = false;
    bool overflowed = false;  // a client that stopped reading: its stream ends
  };
  static ssize_t read(void* cls, uint64_t pos, char* buf, size_t max);
  static void free_stream(void* cls);
  void queue_new(Stream& s) REQUIRES(mutex_);
  void wake_all() REQUIRES(mutex_);
  // Appends to a stream's bytes to send, unless that makes them more than a client
  // reading at all would let pile up.
  static void append(Stream& s, const std::string& text);

  const size_t keep_;
  Mutex mutex_;
  uint64_t base_seq_ GUARDED_BY(mutex_);
  uint64_t last_seq_ GUARDED_BY(mutex_);
  std::deque<Event> ring_ GUARDED_BY(mutex_);
  std::set<Stream*> streams_ GUARDED_BY(mutex_);
  bool closed_ GUARDED_BY(mutex_) = false;
};

}  // namespace ci::reporter
