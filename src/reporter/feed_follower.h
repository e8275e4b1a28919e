// Follows the dispatcher's event feed into the read model: long-polls `events` from the
// last applied seq, applies each reply in one transaction, and tells the listener
// (event streams, metrics, notifier) what changed. When the reply says the read model
// fell behind the feed's retention (a new database included, once the feed has been
// trimmed), it rebuilds from `snapshot` pages and `tests` of the finished jobs, then
// follows from the seq of the first page. A dispatcher that cannot be reached is tried
// again with capped exponential backoff, timed on the injected Clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "ci/clock.h"
#include "ci/events.h"
#include "ci/mutex.h"
#include "ci/net.h"
#include "reporter/read_model.h"

namespace ci::reporter {

struct FollowerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8888;
  std::string token;  // the dispatcher's token, when it has one
  uint64_t batch = 1000;
  std::chrono::milliseconds wait{25000};  // how long an `events` call may wait for news
  uint64_t snapshot_page = 500;
  std::chrono::milliseconds retry_initial{250}, retry_max{30000};
  Clock* clock = &Clock::real();
};

struct FollowerListener {
  // Events applied in one transaction (result.applied: the indices that changed).
  std::function<void(const std::vector<FeedEvent>& events, const ApplyResult& result)> applied;
  // The read model was rebuilt from a snapshot; it follows the feed from `seq` on.
  std::function<void(uint64_t seq)> rebuilt;
  // After each reply: the feed's newest seq, and the time (unix ms) of the newest
  // event applied while the read model is behind it (0 when it is not).
  std::function<void(uint64_t feed_last, int64_t behind_since_ms)> position;
};

class FeedFollower {
 public:
  FeedFollower(FollowerOptions options, ReadModel& model, FollowerListener listener);
  ~FeedFollower();
  FeedFollower(const FeedFollower&) = delete;
  FeedFollower& operator=(const FeedFollower&) = delete;

  void start();
  // Waits for a call in progress (at most `wait` and a little) and joins. Idempotent.
  void stop() EXCLUDES(mutex_);

  // Replies applied and rebuilds done: for tests and logs.
  uint64_t rebuilds() EXCLUDES(mutex_);
  bool connected() EXCLUDES(mutex_);

 private:
  void run() EXCLUDES(mutex_);
  Result<void> follow_once(LineClient& client, uint64_t from);
  Result<void> rebuild(LineClient& client);
  Result<std::map<JobId, std::vector<TestCase>>> finished_cases(LineClient& client,
                                                                const std::vector<JobInfo>& jobs);
  bool stopping() EXCLUDES(mutex_);
  void set_connected(bool connected) EXCLUDES(mutex_);
  // Sleeps on the clock until `delay` passed or stop(); false when stopping.
  bool pause(std::chrono::milliseconds delay) EXCLUDES(mutex_);

  const FollowerOptions options_;
  ReadModel& model_;
  FollowerListener listener_;
  Mutex mutex_;
  CondVar wake_;
  bool stopping_ GUARDED_BY(mutex_) = false;
  bool connected_ GUARDED_BY(mutex_) = false;
  uint64_t rebuilds_ GUARDED_BY(mutex_) = 0;
  std::thread thread_;
};

}  // namespace ci::reporter
