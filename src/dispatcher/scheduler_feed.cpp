// The Scheduler's event feed: each change of a job or of the runners becomes a
// numbered FeedEvent carrying the job as it is after the change. The group committer
// writes the events with the changes, in the same transaction.
#include "dispatcher/scheduler.h"

namespace ci {

void Scheduler::set_wall_origin(TimePoint steady, int64_t wall_ms) {
  wall_origin_steady_ = steady;
  wall_origin_ms_ = wall_ms;
}

int64_t Scheduler::wall_ms(TimePoint t) const {
  return wall_origin_ms_ +
         std::chrono::duration_cast<std::chrono::milliseconds>(t - wall_origin_steady_).count();
}

JobInfo Scheduler::job_info(const Job& job) const {
  JobInfo info;
  info.id = job.id;
  info.commit = job.commit;
  info.branch = job.branch;
  if (job.info) info.commit_info = *job.info;
  info.state = to_string(job.state);
  info.attempt = job.attempt;
  info.runner = job.attempt ? job.current_runner() : "";
  if (job.outcome && job.state == JobState::Finished) {
    const JobOutcome& o = *job.outcome;
    info.status = o.status;
    info.attempt = o.attempt;
    info.runner = o.runner;
    info.tests_run = o.tests_run;
    info.tests_failed = o.tests_failed;
    info.duration_ms = o.duration_ms;
    info.reason = o.reason;
  }
  info.queued_ms = job.queued_ms;
  info.started_ms = job.started_ms;
  info.finished_ms = job.finished_ms;
  info.seq = job.seq;
  info.repo = job.repo;
  info.required = job.required;
  if (job.state == JobState::Queued) info.waiting = job.waiting;
  return info;
}

void Scheduler::feed_job(Job& job, EventKind kind, TimePoint now, std::vector<TestCase> cases) {
  FeedEvent e;
  e.seq = next_feed_seq_++;
  e.time_ms = wall_ms(now);
  e.kind = kind;
  job.seq = e.seq;
  touch(job);
  e.job = job_info(job);
  e.cases = std::move(cases);
  feed_.push_back(std::move(e));
}

void Scheduler::feed_runner(const std::string& address, EventKind kind, TimePoint now) {
  FeedEvent e;
  e.seq = next_feed_seq_++;
  e.time_ms = wall_ms(now);
  e.kind = kind;
  e.runner = address;
  feed_.push_back(std::move(e));
}

void Scheduler::log_grew(JobId id, uint32_t attempt, uint64_t size, TimePoint now) {
  // Coalesced: a job.log event not written yet is brought up to date rather than
  // followed by another, so a chatty test makes one event a write, not one a chunk.
  for (auto it = feed_.rbegin(); it != feed_.rend(); ++it) {
    if (it->kind == EventKind::JobLog && it->job.id == id && it->log_attempt == attempt) {
      it->log_size = std::max(it->log_size, size);
      return;
    }
  }
  FeedEvent e;
  e.seq = next_feed_seq_++;
  e.time_ms = wall_ms(now);
  e.kind = EventKind::JobLog;
  e.job.id = id;
  e.log_attempt = attempt;
  e.log_size = size;
  feed_.push_back(std::move(e));
}

std::vector<FeedEvent> Scheduler::take_feed() {
  std::vector<FeedEvent> out;
  out.swap(feed_);
  return out;
}

void Scheduler::return_feed(std::vector<FeedEvent> events) {
  // Older than anything made since: they go first, keeping the seq order.
  for (auto& e : feed_) events.push_back(std::move(e));
  feed_ = std::move(events);
}

}  // namespace ci
