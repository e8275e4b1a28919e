#include "dispatcher/group_committer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ci {

GroupCommitter::GroupCommitter(GuardedScheduler& state, Store& store, const ResultWriter& writer,
                               Clock& clock)
    : state_(state), store_(store), writer_(writer), clock_(clock) {}

GroupCommitter::~GroupCommitter() { finish(); }

void GroupCommitter::start() {
  thread_ = std::thread([this] { loop(); });
}

void GroupCommitter::finish() {
  {
    MutexLock lock(state_.mutex);
    finishing_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  MutexLock lock(state_.mutex);
  // Without a store thread (never started), no one will write these.
  auto stopped = make_error("the dispatcher is stopping");
  for (auto& waiter : waiters_) waiter.saved(Result<void>(stopped));
  waiters_.clear();
}

void GroupCommitter::after_save(Saved saved) {
  waiters_.push_back({++change_seq_, std::move(saved)});
  cv_.notify_one();
}

void GroupCommitter::note_change() {
  if (lazy_pending_) return;
  lazy_pending_ = true;
  lazy_due_ = clock_.now() + kLazyWriteDelay;
  cv_.notify_one();
}

Result<void> GroupCommitter::save_all() {
  for (bool more = true; more;) {
    if (auto r = save_changes(&more); !r) return r;
  }
  return {};
}

void GroupCommitter::loop() {
  MutexLock lock(state_.mutex);
  while (true) {
    bool awaited = change_seq_ > saved_seq_;
    bool lazy_due = lazy_pending_ && (finishing_ || clock_.now() >= lazy_due_);
    if (!awaited && !lazy_due) {
      if (finishing_) break;  // nothing can change any more
      if (lazy_pending_) {
        clock_.wait_until(cv_, lock, lazy_due_);
      } else {
        cv_.wait(lock);
      }
      continue;
    }
    uint64_t upto = change_seq_;
    lazy_pending_ = false;
    bool more = false;
    auto saved = save_changes(&more);
    saved_seq_ = upto;
    if (more) ++change_seq_;  // the gave-up jobs' results, in the next batch
    while (!waiters_.empty() && waiters_.front().ticket <= upto) {
      auto waiter = std::move(waiters_.front());
      waiters_.pop_front();
      waiter.saved(saved);
    }
  }
  // Anyone still waiting hears that nothing more will be written.
  auto stopped = make_error("the dispatcher is stopping");
  for (auto& waiter : waiters_) waiter.saved(Result<void>(stopped));
  waiters_.clear();
}

Result<void> GroupCommitter::save_changes(bool* more) {
  *more = false;
  Scheduler& scheduler = state_.scheduler;
  auto dirty = scheduler.take_dirty();
  std::vector<Job> rows;
  rows.reserve(dirty.jobs.size());
  for (JobId id : dirty.jobs) rows.push_back(*scheduler.job(id));
  auto events = scheduler.take_events();
  auto feed = scheduler.take_feed();
  std::vector<Job> gave_up;
  for (JobId id : scheduler.take_gave_up()) gave_up.push_back(*scheduler.job(id));
  Attempts ended = scheduler.take_ended_attempts();
  if (dirty.empty() && events.empty() && gave_up.empty() && feed.empty() && ended.empty())
    return {};

  // The write, the log and the result files without the mutex: the other threads go on
  // changing the scheduler meanwhile, and their changes go into the next batch.
  Result<void> saved;
  std::vector<bool> recorded;
  run_unlocked(state_.mutex, [&] {
    if (!dirty.empty() || !feed.empty()) {
      std::vector<const Job*> jobs;
      jobs.reserve(rows.size());
      for (const auto& job : rows) jobs.push_back(&job);
      saved = store_.save(jobs, dirty.runners_added, dirty.runners_removed, feed, dirty.repos);
      if (!saved) spdlog::error("cannot write the state database: {}", saved.error());
    }
    for (const auto& e : events) spdlog::info("{}", e.text);
    // Whether or not the write succeeded: the attempts have ended all the same.
    if (!ended.empty() && on_attempts_ended_) on_attempts_ended_(ended);
    for (const auto& job : gave_up) {
      auto r = writer_.write(job, *job.outcome, "");
      if (!r) spdlog::error("cannot record the result of job {}: {}", job.id, r.error());
      recorded.push_back(r.ok());
    }
  });

  if (saved) {
    if (!feed.empty() && on_feed_written_) on_feed_written_(std::move(feed));
  } else {
    scheduler.return_dirty(std::move(dirty));
    scheduler.return_feed(std::move(feed));
  }
  for (size_t i = 0; i < gave_up.size(); ++i) {
    if (recorded[i]) {
      const JobOutcome& outcome = *gave_up[i].outcome;
      scheduler.finish_result(gave_up[i].id, outcome, clock_.now(), {},
                              outcome.status != TestStatus::Cancelled);
    } else {
      scheduler.abandon_result(gave_up[i].id, clock_.now());
    }
    *more = true;
  }
  return saved;
}

}  // namespace ci
