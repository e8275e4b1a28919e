// Tells runners to stop the jobs that were cancelled while they ran them, from a
// thread of its own: the cancel is already recorded, so this never holds anyone up,
// and a runner that cannot be told finishes the job and sends a result that is
// dropped as a duplicate.
#pragma once

#include <deque>
#include <string>
#include <thread>

#include "ci/mutex.h"
#include "dispatcher/runner_link.h"

namespace ci {

class CancelSender {
 public:
  static constexpr size_t kMaxQueued = 4096;

  explicit CancelSender(RunnerLink& link);
  ~CancelSender();
  CancelSender(const CancelSender&) = delete;
  CancelSender& operator=(const CancelSender&) = delete;

  void start();
  void stop() EXCLUDES(mutex_);
  void send(std::string runner, JobId job, uint32_t attempt) EXCLUDES(mutex_);

 private:
  struct Notice {
    std::string runner;
    JobId job;
    uint32_t attempt;
  };
  void loop() EXCLUDES(mutex_);

  RunnerLink& link_;
  Mutex mutex_;
  CondVar cv_;
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::deque<Notice> queue_ GUARDED_BY(mutex_);
  std::thread thread_;
};

}  // namespace ci
