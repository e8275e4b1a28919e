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

void Scheduler::restore(std::vector<Job> jobs, const std::vector<StoredRunner>& runners,
                        TimePoint now, const std::vector<Repository>& repos) {
  for (const Repository& repo : repos) repos_[repo.name] = repo;
  // The runners first, each slot to be pinged before it gets work; a running job then
  // takes a free slot of its runner.
  auto add = [&](const std::string& address, uint32_t slot, const RunnerSpec& spec) {
    RunnerRecord& r = runners_[slot_key(address, slot)];
    r.address = address;
    r.slot = slot;
    r.spec = spec;
    r.state = RunnerState::Suspect;
    r.epoch = next_seq_++;
    r.registered_at = r.last_seen = now;
    return &r;
  };
  for (const auto& stored : runners) {
    if (runners_.count(stored.address)) continue;
    RunnerSpec spec = stored.spec;
    spec.slots = std::clamp<uint32_t>(spec.slots, 1, kMaxSlots);
    for (uint32_t k = 0; k < spec.slots; ++k) add(stored.address, k, spec);
  }
  for (Job& stored : jobs) {
    JobId id = stored.id;
    next_job_ = std::max(next_job_, id + 1);
    Job& job = jobs_[id] = std::move(stored);
    by_commit_[CommitKey{job.repo, job.commit, job.branch}] = id;
    job.queued_at = now;
    switch (job.state) {
      case JobState::Queued:
        enqueue(job, false);
        // Its last attempt, if it had one, is over (its log may not say so if the
        // process stopped before it was marked).
        if (job.attempt > 0) ended_attempts_.push_back({id, job.attempt});
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
        const std::string address = job.current_runner();
        RunnerRecord* slot = nullptr;
        uint32_t slots = 0;
        if (auto first = runners_.find(address); first != runners_.end()) {
          slots = first->second.spec.slots;
          for (uint32_t k = 0; k < slots && !slot; ++k) {
            RunnerRecord* r = find_slot(address, k);
            if (r && r->job == 0) slot = r;
          }
        }
        if (!slot) {
          // More jobs than slots it had (or a runner not stored): one slot more.
          RunnerSpec spec = slots ? runners_.at(address).spec : RunnerSpec{};
          spec.slots = slots + 1;
          for (uint32_t k = 0; k < slots; ++k) find_slot(address, k)->spec = spec;
          slot = add(address, slots, spec);
        }
        RunnerRecord& r = *slot;
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
  // What registered runners could take is known now.
  for (auto& [repo_name, repo] : queue_.repos) {
    if (auto it = repos_.find(repo_name); it != repos_.end())
      repo.newest_first = it->second.newest_first;
    for (auto& [branch_name, branch] : repo.branches)
      for (auto& [labels, lane] : branch.lanes) {
        lane.waiting = waiting_reason(repo_name, labels);
        for (const auto& [key, id] : lane.jobs) jobs_.at(id).waiting = lane.waiting;
      }
  }
}

Scheduler::Dirty Scheduler::take_dirty() {
  Dirty out;
  out.jobs.assign(dirty_jobs_.begin(), dirty_jobs_.end());
  for (const auto& [address, present] : dirty_runners_) {
    auto it = runners_.find(address);
    if (present && it != runners_.end()) {
      out.runners_added.push_back({address, it->second.spec});
    } else if (!present) {
      out.runners_removed.push_back(address);
    }
  }
  for (const auto& name : dirty_repos_)
    if (auto it = repos_.find(name); it != repos_.end()) out.repos.push_back(it->second);
  dirty_jobs_.clear();
  dirty_runners_.clear();
  dirty_repos_.clear();
  return out;
}

void Scheduler::return_dirty(Dirty dirty) {
  dirty_jobs_.insert(dirty.jobs.begin(), dirty.jobs.end());
  // A runner change made after the failed write is newer: it wins.
  for (const auto& a : dirty.runners_added) dirty_runners_.emplace(a.address, true);
  for (const auto& r : dirty.repos) dirty_repos_.insert(r.name);
  for (const auto& a : dirty.runners_removed) dirty_runners_.emplace(a, false);
}

std::vector<JobId> Scheduler::take_gave_up() {
  std::vector<JobId> out;
  out.swap(gave_up_);
  return out;
}

std::vector<std::pair<JobId, uint32_t>> Scheduler::take_ended_attempts() {
  std::vector<std::pair<JobId, uint32_t>> out;
  out.swap(ended_attempts_);
  return out;
}

std::vector<SchedulerEvent> Scheduler::take_events() {
  std::vector<SchedulerEvent> out;
  out.swap(events_);
  return out;
}

}  // namespace ci
