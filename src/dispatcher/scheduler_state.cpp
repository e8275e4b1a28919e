// The Scheduler's bookkeeping beside its decisions: queries, restoring what a store
// had, and handing out what changed since the last write.
#include <algorithm>

#include "dispatcher/scheduler.h"

namespace ci {

const Job* Scheduler::job(JobId id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

size_t Scheduler::count_jobs(JobState state) const {
  size_t n = 0;
  for (const auto& [id, j] : jobs_)
    if (j.state == state) ++n;
  return n;
}

void Scheduler::restore(std::vector<Job> jobs, const std::vector<std::string>& runners,
                        TimePoint now) {
  for (Job& stored : jobs) {
    JobId id = stored.id;
    next_job_ = std::max(next_job_, id + 1);
    Job& job = jobs_[id] = std::move(stored);
    by_commit_[CommitKey{job.commit, job.branch}] = id;
    job.queued_at = now;
    switch (job.state) {
      case JobState::Queued:
        queue_.push_back(id);
        break;
      // An offered job may have reached its runner (the runtest's OK is written
      // lazily): like a running one, it stays with the runner while its pongs say it
      // has it, and is requeued as soon as one says otherwise.
      case JobState::Finishing:
        // An outcome the dispatcher made itself (gave up, cancelled) that was not
        // recorded yet: recorded again.
        if (job.outcome) {
          gave_up_.push_back(id);
          break;
        }
        [[fallthrough]];
      case JobState::Offered:
      case JobState::Running: {
        bool offered = job.state == JobState::Offered;
        if (offered) touch(job);
        job.state = JobState::Running;
        job.started_at = now;
        RunnerRecord& r = runners_[job.current_runner()];
        r.address = job.current_runner();
        r.state = RunnerState::Running;
        r.job = id;
        r.attempt = job.attempt;
        r.epoch = next_seq_++;
        r.unconfirmed = offered;
        r.registered_at = r.last_seen = now;
        break;
      }
      case JobState::Finished:
        break;
    }
  }
  for (const auto& address : runners) {
    if (runners_.count(address)) continue;
    RunnerRecord& r = runners_[address];
    r.address = address;
    r.state = RunnerState::Suspect;
    r.epoch = next_seq_++;
    r.registered_at = r.last_seen = now;
  }
}

Scheduler::Dirty Scheduler::take_dirty() {
  Dirty out;
  out.jobs.assign(dirty_jobs_.begin(), dirty_jobs_.end());
  for (const auto& [address, present] : dirty_runners_)
    (present ? out.runners_added : out.runners_removed).push_back(address);
  dirty_jobs_.clear();
  dirty_runners_.clear();
  return out;
}

void Scheduler::return_dirty(Dirty dirty) {
  dirty_jobs_.insert(dirty.jobs.begin(), dirty.jobs.end());
  // A runner change made after the failed write is newer: it wins.
  for (const auto& a : dirty.runners_added) dirty_runners_.emplace(a, true);
  for (const auto& a : dirty.runners_removed) dirty_runners_.emplace(a, false);
}

std::vector<JobId> Scheduler::take_gave_up() {
  std::vector<JobId> out;
  out.swap(gave_up_);
  return out;
}

std::vector<SchedulerEvent> Scheduler::take_events() {
  std::vector<SchedulerEvent> out;
  out.swap(events_);
  return out;
}

}  // namespace ci
