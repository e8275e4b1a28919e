#include "dispatcher/scheduler.h"

#include <algorithm>

namespace ci {

const char* to_string(JobState s) {
  switch (s) {
    case JobState::Queued:
      return "queued";
    case JobState::Offered:
      return "offered";
    case JobState::Running:
      return "running";
    case JobState::Finishing:
      return "finishing";
    case JobState::Finished:
      return "finished";
  }
  return "queued";
}

JobState parse_job_state(const std::string& name) {
  for (JobState s : {JobState::Offered, JobState::Running, JobState::Finishing, JobState::Finished})
    if (name == to_string(s)) return s;
  return JobState::Queued;
}

const char* to_string(RunnerState s) {
  switch (s) {
    case RunnerState::Idle:
      return "idle";
    case RunnerState::Offered:
      return "offered";
    case RunnerState::Running:
      return "running";
    case RunnerState::BusyUnknown:
      return "busy";
    case RunnerState::Suspect:
      return "unreachable";
  }
  return "unknown";
}

Scheduler::Scheduler(Options options) : options_(options) {}

void Scheduler::set_idle(RunnerRecord& r) {
  leave_idle(r);
  r.state = RunnerState::Idle;
  r.job = 0;
  r.attempt = 0;
  r.unconfirmed = false;
  r.idle_seq = next_seq_++;
  r.epoch = next_seq_++;
  idle_.insert({r.idle_seq, slot_key(r.address, r.slot)});
}

void Scheduler::leave_idle(RunnerRecord& r) {
  if (r.state == RunnerState::Idle) idle_.erase({r.idle_seq, slot_key(r.address, r.slot)});
}

RunnerRecord& Scheduler::add_slot(const std::string& address, uint32_t slot, const RunnerSpec& spec,
                                  TimePoint now) {
  RunnerRecord r;
  r.address = address;
  r.slot = slot;
  r.spec = spec;
  r.registered_at = now;
  r.last_seen = now;
  r.state = RunnerState::Suspect;  // set_idle moves it out of a non-idle state
  auto& stored = runners_.emplace(slot_key(address, slot), r).first->second;
  set_idle(stored);
  return stored;
}

RunnerRecord* Scheduler::find_slot(const std::string& address, uint32_t slot) {
  auto it = runners_.find(slot_key(address, slot));
  return it == runners_.end() ? nullptr : &it->second;
}

std::vector<const RunnerRecord*> Scheduler::slots_of(const std::string& address) const {
  std::vector<const RunnerRecord*> out;
  auto first = runners_.find(address);
  if (first == runners_.end()) return out;
  out.push_back(&first->second);
  for (uint32_t k = 1; k < first->second.spec.slots; ++k)
    if (auto it = runners_.find(slot_key(address, k)); it != runners_.end())
      out.push_back(&it->second);
  return out;
}

RunnerRecord* Scheduler::slot_with(const std::string& address, JobId job, uint32_t attempt) {
  auto first = runners_.find(address);
  if (first == runners_.end()) return nullptr;
  uint32_t n = first->second.spec.slots;
  for (uint32_t k = 0; k < n; ++k) {
    RunnerRecord* r = find_slot(address, k);
    if (r && r->job == job && (attempt == 0 || r->attempt == attempt)) return r;
  }
  return nullptr;
}

void Scheduler::remove_slot(RunnerRecord& r) {
  leave_idle(r);
  runners_.erase(slot_key(r.address, r.slot));
}

bool Scheduler::register_runner(const std::string& address, TimePoint now,
                                const RunnerSpec& given) {
  RunnerSpec spec = given;
  spec.slots = std::clamp<uint32_t>(spec.slots, 1, kMaxSlots);
  auto it = runners_.find(address);
  if (it != runners_.end()) {
    uint32_t had = it->second.spec.slots;
    bool changed = !(it->second.spec == spec);
    // Slots it no longer has give their jobs back, uncounted.
    for (uint32_t k = spec.slots; k < had; ++k) {
      RunnerRecord* r = find_slot(address, k);
      if (!r) continue;
      if (r->state == RunnerState::Running)
        lose_job(*r, "runner " + address + " has fewer slots", now, false);
      remove_slot(*r);
    }
    for (uint32_t k = 0; k < spec.slots; ++k) {
      RunnerRecord* r = find_slot(address, k);
      if (!r) {
        add_slot(address, k, spec, now);
        continue;
      }
      r->spec = spec;
      r->last_seen = now;
      r->misses = 0;
      if (r->state == RunnerState::Suspect) set_idle(*r);
    }
    if (changed) {
      touch_runner(address, true);
      event("runner " + address + " registered again with " + std::to_string(spec.slots) +
            " slots");
      update_waiting(now);
    }
    return false;
  }
  for (uint32_t k = 0; k < spec.slots; ++k) add_slot(address, k, spec, now);
  touch_runner(address, true);
  feed_runner(address, EventKind::RunnerJoined, now);
  event("runner " + address + " registered");
  update_waiting(now);
  return true;
}

std::vector<PingTarget> Scheduler::ping_targets(TimePoint heard_since) const {
  std::vector<PingTarget> out;
  out.reserve(runners_.size());
  for (const auto& [addr, first] : runners_) {
    if (first.slot != 0) continue;
    auto slots = slots_of(first.address);
    // A runner of one slot: a runtest on its way answers for it; so does a message from
    // it since `heard_since` (a result, an OK), unless it has missed pings. A runner of
    // several slots is always pinged: a result or an offer concerns one slot and says
    // nothing of a job another slot may have lost (a restarted runner forgets its jobs),
    // and a slot given work after the ping is not judged by its answer.
    bool offered = false, suspect = false;
    for (const RunnerRecord* r : slots) {
      offered = offered || r->state == RunnerState::Offered;
      suspect = suspect || r->state == RunnerState::Suspect;
    }
    if (slots.size() <= 1) {
      if (offered) continue;
      if (!suspect && first.misses == 0 && first.last_seen > heard_since) continue;
    }
    PingTarget t{first.address, first.epoch, {}};
    for (const RunnerRecord* r : slots) t.slot_epochs.push_back(r->epoch);
    out.push_back(std::move(t));
  }
  return out;
}

void Scheduler::ping_answered(const PingTarget& target, const RunnerReport& report, TimePoint now) {
  auto it = runners_.find(target.runner);
  if (it == runners_.end()) return;
  std::vector<RunnerRecord*> slots;
  for (uint32_t k = 0; k < it->second.spec.slots; ++k)
    if (RunnerRecord* r = find_slot(target.runner, k)) slots.push_back(r);
  for (RunnerRecord* r : slots) {
    r->last_seen = now;
    r->misses = 0;
  }
  if (!report.known) return;
  // What it says it runs.
  std::vector<std::pair<JobId, uint32_t>> listed;
  if (report.slots) {
    listed = *report.slots;
  } else if (report.busy) {
    listed.push_back({report.job, report.attempt});
  }
  auto take = [&](JobId job, uint32_t attempt) {
    auto found = std::find(listed.begin(), listed.end(), std::make_pair(job, attempt));
    if (found == listed.end()) return false;
    listed.erase(found);
    return true;
  };
  // The report describes the runner as it was when pinged; a slot given work since
  // (its epoch moved on) is not judged by it.
  std::vector<RunnerRecord*> current;
  for (size_t k = 0; k < slots.size(); ++k) {
    RunnerRecord* r = slots[k];
    uint64_t pinged =
        k < target.slot_epochs.size() ? target.slot_epochs[k] : (k == 0 ? target.epoch : 0);
    if (r->epoch != pinged) {
      if (r->state == RunnerState::Running || r->state == RunnerState::Offered)
        take(r->job, r->attempt);
      continue;
    }
    current.push_back(r);
  }
  // Our jobs first: a job we gave it that it no longer lists is lost.
  for (RunnerRecord* r : current) {
    if (r->state == RunnerState::Offered) {
      take(r->job, r->attempt);
    } else if (r->state == RunnerState::Running) {
      if (take(r->job, r->attempt)) {
        r->unconfirmed = false;
      } else {
        lose_job(*r, "runner " + r->address + " is no longer running it", now);
        r->epoch = 0;  // judged: not the slot's state as pinged any more
      }
    }
  }
  // What is left it runs for someone else: that many of its other slots are busy.
  for (RunnerRecord* r : current) {
    if (r->epoch == 0 || r->state == RunnerState::Running || r->state == RunnerState::Offered)
      continue;
    if (!listed.empty()) {
      auto [job, attempt] = listed.front();
      listed.erase(listed.begin());
      if (r->state == RunnerState::BusyUnknown) continue;
      leave_idle(*r);
      r->state = RunnerState::BusyUnknown;
      r->job = job;
      r->attempt = attempt;
      r->epoch = next_seq_++;
    } else if (r->state != RunnerState::Idle) {
      set_idle(*r);
    }
  }
  for (RunnerRecord* r : current)
    if (r->epoch == 0) r->epoch = next_seq_++;
}

void Scheduler::ping_missed(const PingTarget& target, TimePoint now) {
  auto it = runners_.find(target.runner);
  if (it == runners_.end()) return;
  int misses = ++it->second.misses;
  for (uint32_t k = 1; k < it->second.spec.slots; ++k)
    if (RunnerRecord* r = find_slot(target.runner, k)) r->misses = misses;
  if (misses >= options_.heartbeat_misses) drop_runner(target.runner, now);
}

void Scheduler::drop_runner(std::string address, TimePoint now) {
  auto it = runners_.find(address);
  if (it == runners_.end()) return;
  event("runner " + address + " dropped after " + std::to_string(it->second.misses) +
        " missed pings");
  for (uint32_t k = it->second.spec.slots; k-- > 0;) {
    RunnerRecord* r = find_slot(address, k);
    if (!r) continue;
    if (r->state == RunnerState::Running) lose_job(*r, "runner " + address + " died", now);
    remove_slot(*r);
  }
  touch_runner(address, false);
  feed_runner(address, EventKind::RunnerLeft, now);
  update_waiting(now);
}

void Scheduler::lose_job(RunnerRecord& r, const std::string& why, TimePoint now, bool counts) {
  (void)now;
  // A job restored from an offer the runner may never have received is not a lost attempt.
  counts = counts && !r.unconfirmed;
  // Whatever the job does next, this attempt is over: were the runner alive after all,
  // its result would still be taken, but not its log.
  if (r.job != 0 && r.attempt != 0) ended_attempts_.push_back({r.job, r.attempt});
  auto it = jobs_.find(r.job);
  set_idle(r);
  if (it == jobs_.end()) return;
  Job& job = it->second;
  if (job.state != JobState::Running || job.current_runner() != r.address) return;
  if (!counts) {
    requeue_front(job, now);
    event("job " + std::to_string(job.id) + " requeued: " + why);
    return;
  }
  job.infra_failures++;
  if (job.infra_failures >= options_.max_attempts) {
    JobOutcome out;
    out.status = TestStatus::Error;
    out.attempt = job.attempt;
    out.runner = r.address;
    out.reason = "gave up after " + std::to_string(job.infra_failures) +
                 " attempts lost to infrastructure; last: " + why;
    // The caller records this like a result: the job ends in Finishing.
    job.state = JobState::Finishing;
    job.outcome = out;
    touch(job);
    gave_up_.push_back(job.id);
    event("job " + std::to_string(job.id) + " failed: " + out.reason);
    return;
  }
  requeue_front(job, now);
  event("job " + std::to_string(job.id) + " requeued: " + why);
}

void Scheduler::requeue_front(Job& job, TimePoint now) {
  touch(job);
  // Only a job the feed saw start goes back to "queued" there: an offer that bounced
  // never left it.
  bool was_started = job.state == JobState::Running || job.state == JobState::Finishing;
  job.state = JobState::Queued;
  enqueue(job, true);
  if (was_started) feed_job(job, EventKind::JobQueued, now);
}

bool Scheduler::unregister_runner(const std::string& address, TimePoint now) {
  auto it = runners_.find(address);
  if (it == runners_.end()) return false;
  for (uint32_t k = it->second.spec.slots; k-- > 0;) {
    RunnerRecord* r = find_slot(address, k);
    if (!r) continue;
    if (r->state == RunnerState::Running) lose_job(*r, "runner " + address + " left", now, false);
    remove_slot(*r);
  }
  touch_runner(address, false);
  feed_runner(address, EventKind::RunnerLeft, now);
  event("runner " + address + " left");
  update_waiting(now);
  return true;
}

Scheduler::Change Scheduler::retry(JobId id, TimePoint now) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Change::Unknown;
  Job& job = it->second;
  if (job.state != JobState::Finished) return Change::NotApplicable;
  job.state = JobState::Queued;
  job.outcome.reset();
  job.infra_failures = 0;
  job.queued_at = now;
  job.queued_ms = wall_ms(now);
  job.started_ms = job.finished_ms = 0;
  touch(job);
  enqueue(job, false);
  feed_job(job, EventKind::JobQueued, now);
  event("job " + std::to_string(id) + " queued again: " + job.commit + " on " + job.branch);
  return Change::Done;
}

Scheduler::Change Scheduler::abandon(JobId id, uint32_t attempt, const std::string& runner,
                                     TimePoint now) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return Change::Unknown;
  Job& job = it->second;
  if (job.state != JobState::Running || job.attempt != attempt || job.current_runner() != runner)
    return Change::NotApplicable;
  RunnerRecord* r = slot_with(runner, id, attempt);
  if (r && r->state == RunnerState::Running) {
    lose_job(*r, "runner " + runner + " gave it back", now, false);
    // It is stopping: no more work for it until it answers a ping again.
    leave_idle(*r);
    r->state = RunnerState::Suspect;
  } else {
    ended_attempts_.push_back({id, attempt});
    requeue_front(job, now);
    event("job " + std::to_string(id) + " requeued: runner " + runner + " gave it back");
  }
  return Change::Done;
}

Scheduler::Submitted Scheduler::submit(const std::string& commit, const std::string& branch,
                                       TimePoint now, const CommitInfo& info,
                                       const std::string& repo,
                                       const std::vector<std::string>& required) {
  if (auto it = by_commit_.find(CommitKey{repo, commit, branch}); it != by_commit_.end())
    return {it->second, false};
  if (options_.cancel_superseded) cancel_queued_on(repo, branch, commit, now);
  Job job;
  job.id = next_job_++;
  job.commit = commit;
  job.branch = branch;
  job.repo = repo;
  job.required = required;
  std::sort(job.required.begin(), job.required.end());
  job.required.erase(std::unique(job.required.begin(), job.required.end()), job.required.end());
  job.queued_at = now;
  job.queued_ms = wall_ms(now);
  if (!info.empty()) job.info = info;
  JobId id = job.id;
  Job& stored = jobs_.emplace(id, std::move(job)).first->second;
  touch(stored);
  by_commit_.emplace(CommitKey{stored.repo, stored.commit, stored.branch}, id);
  enqueue(stored, false);
  feed_job(stored, EventKind::JobQueued, now);
  event("job " + std::to_string(id) + " queued: " + commit + " on " + branch);
  return {id, true};
}

void Scheduler::cancel_queued_on(const std::string& repo, const std::string& branch,
                                 const std::string& commit, TimePoint now) {
  std::vector<JobId> superseded;
  if (auto r = queue_.repos.find(repo); r != queue_.repos.end())
    if (auto b = r->second.branches.find(branch); b != r->second.branches.end())
      for (const auto& [labels, lane] : b->second.lanes)
        for (const auto& [key, id] : lane.jobs) superseded.push_back(id);
  for (JobId id : superseded)
    cancel(id, "superseded by " + commit.substr(0, 12) + " on " + branch, now);
}

Scheduler::Cancelled Scheduler::cancel(JobId id, const std::string& why, TimePoint now) {
  (void)now;  // recorded later, by finish_result, with the time it is recorded at
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return {Change::Unknown, {}, 0};
  Job& job = it->second;
  if (job.state == JobState::Finished || job.state == JobState::Finishing)
    return {Change::NotApplicable, {}, 0};
  Cancelled done{Change::Done, {}, 0};
  if (job.state == JobState::Queued) {
    dequeue(job);
    if (job.attempt > 0) ended_attempts_.push_back({id, job.attempt});  // ended before
  } else {
    // Offered or running: the runner may have it; it is told to stop, and its own
    // result, when it comes, is a duplicate that frees it.
    done.runner = job.current_runner();
    done.attempt = job.attempt;
  }
  JobOutcome out;
  out.status = TestStatus::Cancelled;
  out.attempt = job.attempt;
  out.runner = job.attempt ? job.current_runner() : "";
  out.reason = why;
  // Recorded like a result the scheduler made itself (take_gave_up).
  job.state = JobState::Finishing;
  job.outcome = out;
  touch(job);
  gave_up_.push_back(id);
  event("job " + std::to_string(id) + " cancelled: " + why);
  return done;
}

bool Scheduler::can_offer() const { return queue_.size > 0 && !idle_.empty(); }

std::optional<Offer> Scheduler::next_offer(TimePoint now) {
  (void)now;
  if (!can_offer()) return std::nullopt;
  // The slot idle longest that can take a queued job.
  std::optional<QueuePick> pick;
  RunnerRecord* chosen = nullptr;
  for (const auto& [seq, key] : idle_) {
    RunnerRecord& r = runners_.at(key);
    pick = pick_next(queue_, cursor_, [&](const std::string& repo, const auto& labels) {
      return serves(r.spec, repo, labels);
    });
    if (pick) {
      chosen = &r;
      break;
    }
  }
  if (!pick) return std::nullopt;
  advance(cursor_, *pick);
  JobId id = pick->job;
  Job& job = jobs_.at(id);
  dequeue(job);
  RunnerRecord& r = *chosen;
  leave_idle(r);
  r.state = RunnerState::Offered;
  r.epoch = next_seq_++;
  job.state = JobState::Offered;
  // The attempt before, however it ended, is over. (An offer refused takes its number
  // back: the attempt named here is one a runner took.)
  if (job.attempt > 0) ended_attempts_.push_back({id, job.attempt});
  job.attempt++;
  job.runners.push_back(r.address);
  r.job = id;
  r.attempt = job.attempt;
  touch(job);
  Offer offer{id,         job.attempt, job.commit,
              job.branch, r.address,   r.epoch,
              job.repo,   "",          slot_key(r.address, r.slot)};
  if (!job.repo.empty())
    if (const Repository* repo = this->repo(job.repo)) offer.url = repo->url;
  return offer;
}

void Scheduler::offer_accepted(const Offer& offer, TimePoint now) {
  Job& job = jobs_.at(offer.job);
  auto it = runners_.find(offer.slot.empty() ? offer.runner : offer.slot);
  if (it == runners_.end() || it->second.epoch != offer.epoch) {
    // The runner was dropped while the offer was in flight; it has the job anyway,
    // and its result will be accepted when it comes. Requeue so nothing waits on it.
    if (job.state == JobState::Offered) {
      ended_attempts_.push_back({offer.job, offer.attempt});
      requeue_front(job, now);
    }
    return;
  }
  RunnerRecord& r = it->second;
  r.state = RunnerState::Running;
  r.last_seen = now;
  r.misses = 0;
  // A pong the runner sent before the runtest reached it says "idle": it must not be
  // taken for the runner having lost the job.
  r.epoch = next_seq_++;
  // A late result of an earlier attempt may have finished the job meanwhile: the
  // runner runs it anyway, and its result will be a duplicate that frees it.
  if (job.state != JobState::Offered) return;
  job.state = JobState::Running;
  job.started_at = now;
  job.started_ms = wall_ms(now);
  touch(job);
  feed_job(job, EventKind::JobStarted, now);
  event("job " + std::to_string(job.id) + " attempt " + std::to_string(job.attempt) +
        " running on " + r.address + ": " + job.commit);
}

void Scheduler::offer_refused(const Offer& offer, Refusal why, TimePoint now) {
  (void)now;
  Job& job = jobs_.at(offer.job);
  job.runners.pop_back();
  job.attempt--;
  touch(job);
  if (job.state == JobState::Offered) requeue_front(job, now);
  auto it = runners_.find(offer.slot.empty() ? offer.runner : offer.slot);
  if (it == runners_.end() || it->second.epoch != offer.epoch) return;
  RunnerRecord& r = it->second;
  r.job = 0;
  r.attempt = 0;
  r.epoch = next_seq_++;
  switch (why) {
    case Refusal::Busy:
      r.state = RunnerState::BusyUnknown;
      break;
    case Refusal::Unreachable:
      r.state = RunnerState::Suspect;
      if (++r.misses >= options_.heartbeat_misses) drop_runner(r.address, now);
      break;
    case Refusal::Rejected:
      r.state = RunnerState::Suspect;
      break;
  }
}

ResultVerdict Scheduler::check_result(JobId id, uint32_t attempt, const std::string& runner) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return ResultVerdict::UnknownJob;
  Job& job = it->second;
  if (attempt == 0 || attempt > job.runners.size() || job.runners[attempt - 1] != runner)
    return ResultVerdict::WrongRunner;
  if (job.state == JobState::Finished || job.state == JobState::Finishing)
    return ResultVerdict::Duplicate;
  // A late result for a job requeued since: it leaves the queue (rare, so the linear
  // erase is fine; the common path never scans the queue).
  if (job.state == JobState::Queued) dequeue(job);
  job.state = JobState::Finishing;
  return ResultVerdict::Accept;
}

void Scheduler::finish_result(JobId id, const JobOutcome& outcome, TimePoint now,
                              std::vector<TestCase> cases, bool release) {
  Job& job = jobs_.at(id);
  job.state = JobState::Finished;
  job.outcome = outcome;
  job.finished_ms = wall_ms(now);
  feed_job(
      job,
      outcome.status == TestStatus::Cancelled ? EventKind::JobCancelled : EventKind::JobFinished,
      now, std::move(cases));
  event("job " + std::to_string(id) + " " + to_string(outcome.status) + " on " +
        (outcome.runner.empty() ? std::string("no runner") : outcome.runner) + " (attempt " +
        std::to_string(outcome.attempt) + "): " + job.commit);
  if (!release) return;
  release_runner(outcome.runner, id, outcome.attempt, now);
  // Counted on the runner's first slot.
  if (auto it = runners_.find(outcome.runner); it != runners_.end()) it->second.jobs_done++;
}

void Scheduler::abandon_result(JobId id, TimePoint now) {
  Job& job = jobs_.at(id);
  if (job.state != JobState::Finishing) return;
  job.outcome.reset();
  RunnerRecord* r = slot_with(job.current_runner(), id);
  bool running = r && r->state == RunnerState::Running;
  if (running) {
    job.state = JobState::Running;
    touch(job);
  } else {
    requeue_front(job, now);
  }
}

void Scheduler::release_runner(const std::string& runner, JobId job, uint32_t attempt,
                               TimePoint now) {
  if (auto first = runners_.find(runner); first != runners_.end()) {
    first->second.last_seen = now;
    first->second.misses = 0;
  }
  RunnerRecord* slot = slot_with(runner, job, attempt);
  if (!slot) return;
  RunnerRecord& r = *slot;
  r.last_seen = now;
  r.misses = 0;
  // Offered too: a quick test's result can arrive before the runtest's OK is handled.
  bool its_job = r.job == job && r.attempt == attempt &&
                 (r.state == RunnerState::Running || r.state == RunnerState::BusyUnknown ||
                  r.state == RunnerState::Offered);
  if (its_job) set_idle(r);
}

}  // namespace ci
