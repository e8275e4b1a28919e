#include "dispatcher/cancel_sender.h"

#include <spdlog/spdlog.h>

namespace ci {

CancelSender::CancelSender(RunnerLink& link) : link_(link) {}

CancelSender::~CancelSender() { stop(); }

void CancelSender::start() {
  thread_ = std::thread([this] { loop(); });
}

void CancelSender::stop() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CancelSender::send(std::string runner, JobId job, uint32_t attempt) {
  {
    MutexLock lock(mutex_);
    if (queue_.size() >= kMaxQueued) {
      spdlog::warn("too many cancels waiting: runner {} is not told to stop job {}", runner, job);
      return;
    }
    queue_.push_back({std::move(runner), job, attempt});
  }
  cv_.notify_one();
}

void CancelSender::loop() {
  MutexLock lock(mutex_);
  while (true) {
    if (queue_.empty()) {
      if (stopping_) return;
      cv_.wait(lock);
      continue;
    }
    Notice notice = std::move(queue_.front());
    queue_.pop_front();
    run_unlocked(mutex_, [&] {
      auto told = link_.cancel(notice.runner, notice.job, notice.attempt);
      if (told) {
        spdlog::info("runner {} told to stop job {} attempt {}", notice.runner, notice.job,
                     notice.attempt);
      } else {
        spdlog::warn("runner {} not told to stop job {} attempt {}: {}", notice.runner, notice.job,
                     notice.attempt, told.error());
      }
    });
  }
}

}  // namespace ci
