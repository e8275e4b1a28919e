// The live log: while a test runs, the runner sends what it prints to the dispatcher
// (`log <job> <attempt> <runner> <offset> <len>`, ci/protocol.h).
//
// The raw output of an attempt is a stream of bytes at offsets 0..N. One sender thread
// sends whatever has accumulated as soon as the previous send was answered: small
// batches while the test prints little (a line reaches the dispatcher one round trip
// after it is printed), large ones while it prints a lot. The reply "OK <received>"
// says where the next chunk starts.
//
// While the dispatcher cannot be reached the bytes wait, bounded like the output's cap:
// the oldest unsent ones (the head) and the newest (the tail) are kept, the middle is
// dropped. Asked for an offset it no longer has, the sender sends from the earliest it
// still has, and the dispatcher marks the gap omitted. Retries follow the runner's
// backoff on its Clock. The log never holds up a result: the results go their own way
// (runner_liaison.cpp), and wait_sent() waits only while the dispatcher answers.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "ci/clock.h"
#include "ci/mutex.h"
#include "ci/net.h"
#include "ci/protocol.h"
#include "ci/thread_annotations.h"
#include "ci/validate.h"
#include "runner/backoff.h"

namespace ci::runner {

// The bytes of one attempt's output not yet confirmed by the dispatcher, within about
// 1.25 x `cap` bytes (the tail has some slack so that dropping its oldest bytes is not
// done for every piece of output). Not thread-safe.
class LogBuffer {
 public:
  explicit LogBuffer(size_t cap);
  void append(std::string_view bytes);
  struct Chunk {
    uint64_t offset = 0;
    std::string bytes;
  };
  // What to send next: at most `max` bytes from the earliest offset still held.
  std::optional<Chunk> next(size_t max) const;
  // The dispatcher holds [0, received): what is below it is let go.
  void confirmed(uint64_t received);
  uint64_t total() const { return total_; }
  bool empty() const { return head_.empty() && tail_.empty(); }
  size_t held() const { return head_.size() + tail_.size(); }

 private:
  size_t half_;
  // With no tail, the head holds [head_start_, total_); with one, the head holds what
  // is left of the first bytes and the tail the last ones, [tail_start_, total_).
  std::string head_;
  uint64_t head_start_ = 0;
  std::string tail_;
  uint64_t tail_start_ = 0;
  uint64_t total_ = 0;
};

struct LogSenderOptions {
  HostPort dispatcher;
  ClientOptions client;  // token, service and timeouts of the connection
  std::string runner;    // host:port, as registered
  size_t cap = 256u << 10;
  size_t max_chunk = 64u << 10;  // bytes of one log message
  std::chrono::milliseconds retry_initial{100};
  std::chrono::milliseconds retry_max{5000};
  Clock* clock = &Clock::real();
};

class LogSender {
 public:
  explicit LogSender(LogSenderOptions options);
  ~LogSender();  // stops
  LogSender(const LogSender&) = delete;
  LogSender& operator=(const LogSender&) = delete;

  void start();
  void stop() EXCLUDES(mu_);
  // A new attempt: what is left of the previous one is dropped.
  void begin(JobId job, uint32_t attempt) EXCLUDES(mu_);
  // Output of the current attempt, in order. Cheap: copies and wakes the sender.
  void append(std::string_view bytes) EXCLUDES(mu_);
  // Waits (real time, at most `timeout`) until every byte appended so far is with the
  // dispatcher; returns at once, false, while the dispatcher is failing or refused the
  // attempt's log. For the last lines to arrive before the results do.
  bool wait_sent(std::chrono::milliseconds timeout) EXCLUDES(mu_);

 private:
  void run() EXCLUDES(mu_);
  void send_next(LineClient& client) REQUIRES(mu_);

  const LogSenderOptions options_;
  Clock& clock_;
  Mutex mu_;
  CondVar changed_;
  bool stopping_ GUARDED_BY(mu_) = false;
  JobId job_ GUARDED_BY(mu_) = 0;  // 0: no attempt
  uint32_t attempt_ GUARDED_BY(mu_) = 0;
  uint64_t generation_ GUARDED_BY(mu_) = 0;  // one more at each begin()
  LogBuffer buffer_ GUARDED_BY(mu_);
  size_t most_held_ GUARDED_BY(mu_) = 0;  // the buffer's largest since it was last empty
  bool refused_ GUARDED_BY(mu_) = false;  // the dispatcher refused this attempt's log
  bool failing_ GUARDED_BY(mu_) = false;  // the last send did not reach it
  bool sending_ GUARDED_BY(mu_) = false;  // a chunk is on its way
  TimePoint retry_at_ GUARDED_BY(mu_);
  Backoff backoff_ GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace ci::runner
