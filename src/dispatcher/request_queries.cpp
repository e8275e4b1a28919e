// The RequestHandler's queries that read more than counters: lists of jobs, one job,
// its test cases and its log, and the snapshot a feed reader starts from.
#include <algorithm>
#include <map>

#include "ci/events.h"
#include "ci/replies.h"
#include "dispatcher/request_handler.h"

namespace ci {

namespace {

// A body of JSON lines in an OK reply.
Reply json_lines(std::string body) { return Reply::ok_with_body(std::move(body)); }

bool matches(const Job& j, const JobsRequest& r) {
  if (!r.branch.empty() && j.branch != r.branch) return false;
  if (!r.repo.empty() && j.repo != (r.repo == "-" ? std::string() : r.repo)) return false;
  if (r.status.empty()) return true;
  if (r.status == to_string(j.state)) return true;
  return j.state == JobState::Finished && j.outcome && r.status == to_string(j.outcome->status);
}

// The row is the job as the feed describes it (Scheduler::job_info), less the commit's
// details and times.
JobRow job_row(JobInfo info) {
  JobRow row;
  row.id = info.id;
  row.commit = std::move(info.commit);
  row.branch = std::move(info.branch);
  row.state = std::move(info.state);
  row.status = info.status;
  row.attempt = info.attempt;
  row.runner = std::move(info.runner);
  row.tests_run = info.tests_run;
  row.tests_failed = info.tests_failed;
  if (info.status) row.duration_ms = info.duration_ms;
  row.repo = std::move(info.repo);
  row.waiting = std::move(info.waiting);
  return row;
}

}  // namespace

Reply RequestHandler::on_jobs(const JobsRequest& r) {
  MutexLock lock(state_.mutex);
  const auto& jobs = state_.scheduler.jobs();
  // Bounded: one reply is at most about a megabyte.
  const uint64_t limit = std::min(r.limit, kMaxJobsListed);
  std::vector<const Job*> newest;
  newest.reserve(std::min<uint64_t>(limit, jobs.size()));
  for (auto it = jobs.rbegin(); it != jobs.rend() && newest.size() < limit; ++it)
    if (matches(it->second, r)) newest.push_back(&it->second);
  JobsReply reply;
  reply.jobs.reserve(newest.size());
  for (auto it = newest.rbegin(); it != newest.rend(); ++it)
    reply.jobs.push_back(job_row(state_.scheduler.job_info(**it)));
  return to_reply(reply);
}

Reply RequestHandler::on_repos() {
  MutexLock lock(state_.mutex);
  const Scheduler& scheduler = state_.scheduler;
  ReposReply reply;
  std::map<std::string, size_t> index;
  for (const auto& [name, repo] : scheduler.repos()) {
    index[name] = reply.repos.size();
    RepoRow row;
    row.name = name;
    row.url = repo.url;
    row.newest_first = repo.newest_first;
    reply.repos.push_back(std::move(row));
  }
  for (const auto& [id, j] : scheduler.jobs()) {
    auto it = index.find(j.repo);
    if (it == index.end()) continue;
    RepoRow& row = reply.repos[it->second];
    switch (j.state) {
      case JobState::Queued:
        row.jobs_queued++;
        break;
      case JobState::Offered:
      case JobState::Running:
      case JobState::Finishing:
        row.jobs_running++;
        break;
      case JobState::Finished:
        row.jobs_finished++;
        break;
    }
  }
  return to_reply(reply);
}

Reply RequestHandler::on_job(const JobRequest& r) {
  MutexLock lock(state_.mutex);
  const Job* job = state_.scheduler.job(r.job);
  if (!job) return Reply::err("unknown job " + std::to_string(r.job));
  return json_lines(serialize_job_info(state_.scheduler.job_info(*job)) + "\n");
}

Reply RequestHandler::on_tests(const TestsRequest& r) {
  uint32_t attempt = r.attempt;
  {
    MutexLock lock(state_.mutex);
    const Job* job = state_.scheduler.job(r.job);
    if (!job) return Reply::err("unknown job " + std::to_string(r.job));
    // The latest: the attempt whose result the job has, else the one running.
    if (attempt == 0)
      attempt =
          job->outcome && job->state == JobState::Finished ? job->outcome->attempt : job->attempt;
  }
  auto cases = feed_.store.read_cases(r.job, attempt);
  if (!cases) return Reply::err("cannot read the test cases: " + cases.error());
  return json_lines(serialize_cases(*cases));
}

Reply RequestHandler::on_logread(const LogReadRequest& r) {
  uint32_t attempt = r.attempt;
  bool ended = false;
  {
    MutexLock lock(state_.mutex);
    const Job* job = state_.scheduler.job(r.job);
    if (!job) return Reply::err("unknown job " + std::to_string(r.job));
    if (attempt == 0) attempt = job->attempt;
    if (attempt > job->attempt)
      return Reply::err("job " + std::to_string(r.job) + " has no attempt " +
                        std::to_string(attempt));
    // An attempt has ended once a later one began or the job finished: no more bytes
    // will come, even if its runner never said so.
    ended = attempt < job->attempt || job->state == JobState::Finished ||
            (job->state == JobState::Queued && attempt == job->attempt);
  }
  if (attempt == 0) {
    Reply reply = Reply::ok_with_body("");
    reply.args = {std::to_string(r.offset), "0", "0"};
    return reply;
  }
  auto chunk = feed_.logs.read(r.job, attempt, r.offset, r.max);
  if (!chunk) return Reply::err("cannot read the log: " + chunk.error());
  Reply reply = Reply::ok_with_body(std::move(chunk->bytes));
  reply.args = {std::to_string(chunk->start), std::to_string(chunk->total),
                chunk->done || ended ? "1" : "0"};
  return reply;
}

Reply RequestHandler::on_snapshot(const SnapshotRequest& r) {
  // The feed's position first: every change up to it is in the jobs read after it, so
  // a reader that follows the feed from here misses nothing.
  uint64_t seq = feed_.hub.last_written();
  MutexLock lock(state_.mutex);
  const auto& jobs = state_.scheduler.jobs();
  std::string body;
  uint64_t n = 0;
  for (auto it = jobs.upper_bound(r.after); it != jobs.end() && n < r.limit; ++it, ++n)
    body += serialize_job_info(state_.scheduler.job_info(it->second)) + "\n";
  Reply reply = Reply::ok_with_body(std::move(body));
  reply.args = {std::to_string(seq)};
  return reply;
}

}  // namespace ci
