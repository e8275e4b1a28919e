#include "dispatcher/offer_sender.h"

#include <spdlog/spdlog.h>

namespace ci {

OfferSender::OfferSender(GuardedScheduler& state, GroupCommitter& committer, RunnerLink& link,
                         Clock& clock)
    : state_(state), committer_(committer), link_(link), clock_(clock) {}

OfferSender::~OfferSender() { stop(); }

void OfferSender::start(size_t threads) {
  for (size_t i = 0; i < std::max<size_t>(1, threads); ++i)
    threads_.emplace_back([this] { loop(); });
}

void OfferSender::stop() {
  {
    MutexLock lock(state_.mutex);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  MutexLock lock(state_.mutex);
  for (const auto& offer : sendable_)
    state_.scheduler.offer_refused(offer, Scheduler::Refusal::Busy, clock_.now());
  if (!sendable_.empty()) committer_.note_change();
  sendable_.clear();
}

void OfferSender::plan() {
  if (stopping_) return;
  Scheduler& scheduler = state_.scheduler;
  while (scheduler.can_offer()) {
    auto offer = scheduler.next_offer(clock_.now());
    if (!offer) break;
    committer_.after_save([this, offer = std::move(*offer)](const Result<void>& saved) {
      state_.mutex.assert_held();  // the committer calls back with it held
      written(offer, saved);
    });
  }
}

void OfferSender::written(Offer offer, const Result<void>& saved) {
  if (!saved || stopping_) {
    auto why = saved ? Scheduler::Refusal::Busy : Scheduler::Refusal::Rejected;
    state_.scheduler.offer_refused(offer, why, clock_.now());
    committer_.note_change();
    return;
  }
  sendable_.push_back(std::move(offer));
  cv_.notify_one();
}

void OfferSender::loop() {
  MutexLock lock(state_.mutex);
  while (true) {
    cv_.wait(lock, [&]() REQUIRES(state_.mutex) { return stopping_ || !sendable_.empty(); });
    if (stopping_) break;
    Offer offer = std::move(sendable_.front());
    sendable_.pop_front();
    lock.unlock();

    auto answer = link_.runtest(offer);

    lock.lock();
    auto t = clock_.now();
    Scheduler& scheduler = state_.scheduler;
    switch (answer.kind) {
      case RunnerLink::RuntestAnswer::Kind::Accepted:
        scheduler.offer_accepted(offer, t);
        break;
      case RunnerLink::RuntestAnswer::Kind::Busy:
        spdlog::info("runner {} is busy; job {} goes back to the queue", offer.runner, offer.job);
        scheduler.offer_refused(offer, Scheduler::Refusal::Busy, t);
        break;
      case RunnerLink::RuntestAnswer::Kind::Rejected:
        spdlog::warn("runner {} refused job {}: {}", offer.runner, offer.job, answer.why);
        scheduler.offer_refused(offer, Scheduler::Refusal::Rejected, t);
        break;
      case RunnerLink::RuntestAnswer::Kind::Unreachable:
        spdlog::warn("cannot reach runner {} for job {}: {}", offer.runner, offer.job, answer.why);
        scheduler.offer_refused(offer, Scheduler::Refusal::Unreachable, t);
        break;
    }
    plan();
    committer_.note_change();
  }
}

}  // namespace ci
