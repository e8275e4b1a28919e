#include "dispatcher/heartbeat.h"

#include <spdlog/spdlog.h>

#include <set>
#include <utility>
#include <vector>

namespace ci {

Heartbeat::Heartbeat(GuardedScheduler& state, GroupCommitter& committer, OfferSender& offers,
                     RunnerLink& link, Clock& clock, std::chrono::milliseconds interval)
    : state_(state),
      committer_(committer),
      offers_(offers),
      link_(link),
      clock_(clock),
      interval_(interval) {}

Heartbeat::~Heartbeat() { stop(); }

void Heartbeat::start() {
  thread_ = std::thread([this] { loop(); });
}

void Heartbeat::stop() {
  {
    MutexLock lock(state_.mutex);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Heartbeat::loop() {
  while (true) {
    {
      MutexLock lock(state_.mutex);
      auto next = clock_.now() + interval_;
      while (!stopping_ && clock_.now() < next) clock_.wait_until(cv_, lock, next);
      if (stopping_) return;
    }
    round();
  }
}

void Heartbeat::round() {
  std::vector<PingTarget> targets;
  {
    MutexLock lock(state_.mutex);
    targets = state_.scheduler.ping_targets(clock_.now() - interval_);
  }

  std::vector<std::pair<PingTarget, RunnerLink::PingAnswer>> answers;
  std::set<std::string> pinged;
  for (const auto& target : targets) {
    pinged.insert(target.runner);
    auto answer = link_.ping(target.runner);
    if (answer.kind == RunnerLink::PingAnswer::Kind::SlotsFull) {
      spdlog::info("ping to {}: busy (too many connections); asked again next round",
                   target.runner);
      continue;
    }
    if (answer.kind == RunnerLink::PingAnswer::Kind::Missed)
      spdlog::debug("ping to {} failed: {}", target.runner, answer.why);
    answers.emplace_back(target, std::move(answer));
  }
  link_.keep_only(pinged);  // the connections of runners that are gone

  MutexLock lock(state_.mutex);
  auto t = clock_.now();
  for (const auto& [target, answer] : answers) {
    if (answer.kind == RunnerLink::PingAnswer::Kind::Report) {
      state_.scheduler.ping_answered(target, answer.report, t);
    } else {
      state_.scheduler.ping_missed(target, t);
    }
  }
  offers_.plan();
  committer_.note_change();
}

}  // namespace ci
