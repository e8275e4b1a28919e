// Delivers the outbox: notifications the read model wrote with the events that caused
// them (a job finished; a branch went from passing to failing or back). Each target (a
// webhook URL, a command) has a thread of its own that reads its rows in order, a few
// at a time (the bounded queue), tries each with a timeout, retries with capped
// exponential backoff on the Clock, and deletes the row once delivered (or after the
// last attempt, logged). So a receiver that hangs or fails delays only its own
// notifications, never the follower or another target; and a notification survives a
// restart until delivered. A crash between a delivery and the row's deletion delivers
// it again: each carries a unique "id" (and X-Tinyci-Delivery header) to drop repeats.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ci/clock.h"
#include "ci/result.h"

namespace ci::reporter {

struct NotifyOptions {
  std::vector<std::string> webhooks;         // URLs receiving a JSON POST
  std::vector<std::string> commands;         // shell commands run with the JSON on stdin
  std::chrono::milliseconds timeout{10000};  // of each attempt
  std::chrono::milliseconds retry_initial{1000}, retry_max{60000};
  int max_attempts = 10;
  size_t queue = 32;  // rows read from the outbox at a time, per target
  Clock* clock = &Clock::real();
};

// The target names the outbox rows carry, in a stable order.
std::vector<std::string> notify_targets(const NotifyOptions& options);

class Notifier {
 public:
  Notifier(NotifyOptions options, std::string db_path);
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  Result<void> start();
  // New rows are in the outbox.
  void wake();
  void stop();

  // Notifications delivered and given up on since start: for tests.
  uint64_t delivered() const;
  uint64_t failed() const;

  struct Target;

 private:
  NotifyOptions options_;
  std::string db_path_;
  std::vector<std::unique_ptr<Target>> targets_;
};

}  // namespace ci::reporter
