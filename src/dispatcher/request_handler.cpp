#include "dispatcher/request_handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ci/replies.h"
#include "ci/validate.h"

namespace ci {

RequestHandler::RequestHandler(GuardedScheduler& state, GroupCommitter& committer,
                               OfferSender& offers, const ResultWriter& writer, Clock& clock)
    : state_(state), committer_(committer), offers_(offers), writer_(writer), clock_(clock) {}

void RequestHandler::handle(const Frame& frame, const std::string& peer, Responder respond) {
  auto request = parse_request(frame);
  if (!request) {
    spdlog::warn("bad message from {}: {}", peer, request.error());
    respond({serialize_reply(Reply::err(request.error())), true});
    return;
  }
  handle(*request, [respond = std::move(respond)](const Reply& reply) {
    respond({serialize_reply(reply), reply.kind == Reply::Kind::Err});
  });
}

void RequestHandler::handle(const Request& request, Answer answer) {
  struct Visitor {
    RequestHandler* h;
    Answer& answer;
    void operator()(const StatusRequest&) const { answer(h->on_status()); }
    void operator()(const RegisterRequest& r) const { h->on_register(r, std::move(answer)); }
    void operator()(const DispatchRequest& r) const { h->on_dispatch(r, std::move(answer)); }
    void operator()(const ResultsRequest& r) const { h->on_results(r, std::move(answer)); }
    void operator()(const RunnersRequest&) const { answer(h->on_runners()); }
    void operator()(const JobsRequest& r) const { answer(h->on_jobs(r)); }
    void operator()(const PingRequest&) const { answer(Reply::pong()); }
    void operator()(const RuntestRequest&) const {
      answer(Reply::err("runtest is for runners, not the dispatcher"));
    }
    void operator()(const PollRequest&) const {
      answer(Reply::err("poll is for the observer, not the dispatcher"));
    }
    void operator()(const RetryRequest& r) const { h->on_retry(r, std::move(answer)); }
    void operator()(const AbandonRequest& r) const { h->on_abandon(r, std::move(answer)); }
    void operator()(const UnregisterRequest& r) const { h->on_unregister(r, std::move(answer)); }
  };
  std::visit(Visitor{this, answer}, request);
}

void RequestHandler::answer_when_saved(Reply reply, Answer answer) {
  offers_.plan();  // written in the same transaction as the change that made them possible
  committer_.after_save(
      [reply = std::move(reply), answer = std::move(answer)](const Result<void>& saved) {
        if (saved) {
          answer(reply);
        } else {
          answer(Reply::err("cannot store the change: " + saved.error()));
        }
      });
}

void RequestHandler::on_register(const RegisterRequest& r, Answer answer) {
  MutexLock lock(state_.mutex);
  state_.scheduler.register_runner(HostPort{r.host, r.port}.str(), clock_.now());
  answer_when_saved(Reply::ok(), std::move(answer));
}

void RequestHandler::on_unregister(const UnregisterRequest& r, Answer answer) {
  MutexLock lock(state_.mutex);
  state_.scheduler.unregister_runner(HostPort{r.host, r.port}.str(), clock_.now());
  answer_when_saved(Reply::ok(), std::move(answer));
}

void RequestHandler::on_retry(const RetryRequest& r, Answer answer) {
  MutexLock lock(state_.mutex);
  auto change = state_.scheduler.retry(r.job, clock_.now());
  if (change == Scheduler::Change::Done)
    return answer_when_saved(Reply::ok({std::to_string(r.job)}), std::move(answer));
  lock.unlock();
  if (change == Scheduler::Change::Unknown)
    return answer(Reply::err("unknown job " + std::to_string(r.job)));
  answer(Reply::err("job " + std::to_string(r.job) + " has not finished"));
}

void RequestHandler::on_abandon(const AbandonRequest& r, Answer answer) {
  MutexLock lock(state_.mutex);
  auto change = state_.scheduler.abandon(r.job, r.attempt, r.runner, clock_.now());
  if (change == Scheduler::Change::Unknown) {
    lock.unlock();
    return answer(Reply::err("unknown job " + std::to_string(r.job)));
  }
  // NotApplicable: already finished or moved on; nothing for the runner to do either.
  answer_when_saved(Reply::ok(), std::move(answer));
}

void RequestHandler::on_dispatch(const DispatchRequest& r, Answer answer) {
  MutexLock lock(state_.mutex);
  auto submitted = state_.scheduler.submit(r.commit, r.branch, clock_.now());
  if (!submitted.created)
    spdlog::info("dispatch of {} on {}: already job {}", r.commit, r.branch, submitted.id);
  answer_when_saved(Reply::ok({std::to_string(submitted.id)}), std::move(answer));
}

void RequestHandler::on_results(const ResultsRequest& r, Answer answer) {
  MutexLock lock(state_.mutex);
  Scheduler& scheduler = state_.scheduler;
  switch (scheduler.check_result(r.job, r.attempt, r.runner)) {
    case ResultVerdict::UnknownJob:
      lock.unlock();
      spdlog::warn("results for unknown job {} from {}", r.job, r.runner);
      return answer(Reply::err("unknown job " + std::to_string(r.job)));
    case ResultVerdict::WrongRunner:
      lock.unlock();
      spdlog::warn("results for job {} attempt {} from {}, which was not given it", r.job,
                   r.attempt, r.runner);
      return answer(Reply::err("job " + std::to_string(r.job) + " attempt " +
                               std::to_string(r.attempt) + " was not given to " + r.runner));
    case ResultVerdict::Duplicate:
      spdlog::info("job {} already has its result; dropped the one from {} (attempt {})", r.job,
                   r.runner, r.attempt);
      scheduler.release_runner(r.runner, r.job, r.attempt, clock_.now());
      return answer_when_saved(Reply::ok(), std::move(answer));
    case ResultVerdict::Accept:
      break;
  }
  Job job = *scheduler.job(r.job);
  lock.unlock();

  JobOutcome outcome;
  outcome.status = r.status;
  outcome.tests_run = r.tests_run;
  outcome.tests_failed = r.tests_failed;
  outcome.duration_ms = r.duration_ms;
  outcome.runner = r.runner;
  outcome.attempt = r.attempt;
  // The file first, then the store: after a crash in between, the job is still open
  // and the runner, which keeps its result until it hears OK, sends it again.
  auto written = writer_.write(job, outcome, r.output);

  lock.lock();
  if (!written) {
    scheduler.abandon_result(r.job, clock_.now());
    committer_.note_change();
    lock.unlock();
    spdlog::error("cannot record the result of job {}: {}", r.job, written.error());
    return answer(Reply::err("cannot record the result: " + written.error()));
  }
  scheduler.finish_result(r.job, outcome, clock_.now());
  answer_when_saved(Reply::ok(), std::move(answer));
}

Reply RequestHandler::on_status() {
  MutexLock lock(state_.mutex);
  const Scheduler& scheduler = state_.scheduler;
  StatusReply status;
  status.runners = scheduler.runners().size();
  for (const auto& [addr, r] : scheduler.runners()) {
    switch (r.state) {
      case RunnerState::Idle:
        status.runners_idle++;
        break;
      case RunnerState::Offered:
      case RunnerState::Running:
      case RunnerState::BusyUnknown:
        status.runners_busy++;
        break;
      case RunnerState::Suspect:
        status.runners_unreachable++;
        break;
    }
  }
  for (const auto& [id, j] : scheduler.jobs()) {
    if (j.state == JobState::Running || j.state == JobState::Offered ||
        j.state == JobState::Finishing)
      status.jobs_running++;
    if (j.state != JobState::Finished) continue;
    status.jobs_finished++;
    switch (j.outcome->status) {
      case TestStatus::Passed:
        status.jobs_passed++;
        break;
      case TestStatus::Failed:
        status.jobs_failed++;
        break;
      case TestStatus::Error:
        status.jobs_error++;
        break;
      case TestStatus::Timeout:
        status.jobs_timeout++;
        break;
    }
  }
  status.jobs_queued = scheduler.queued();
  status.results_dir = writer_.dir();
  return to_reply(status);
}

Reply RequestHandler::on_runners() {
  MutexLock lock(state_.mutex);
  auto t = clock_.now();
  RunnersReply reply;
  reply.runners.reserve(state_.scheduler.runners().size());
  for (const auto& [addr, r] : state_.scheduler.runners()) {
    RunnerRow row;
    row.address = addr;
    row.state = to_string(r.state);
    row.job = r.job;
    row.attempt = r.job ? r.attempt : 0;
    row.jobs_done = r.jobs_done;
    row.last_seen_ms = static_cast<uint64_t>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(t - r.last_seen).count()));
    reply.runners.push_back(std::move(row));
  }
  return to_reply(reply);
}

Reply RequestHandler::on_jobs(const JobsRequest& r) {
  MutexLock lock(state_.mutex);
  const auto& jobs = state_.scheduler.jobs();
  // Bounded: one reply is at most about a megabyte.
  const uint64_t limit = std::min(r.limit, kMaxJobsListed);
  std::vector<const Job*> newest;
  newest.reserve(std::min<uint64_t>(limit, jobs.size()));
  for (auto it = jobs.rbegin(); it != jobs.rend() && newest.size() < limit; ++it)
    newest.push_back(&it->second);
  JobsReply reply;
  reply.jobs.reserve(newest.size());
  for (auto it = newest.rbegin(); it != newest.rend(); ++it) {
    const Job& j = **it;
    JobRow row;
    row.id = j.id;
    row.commit = j.commit;
    row.branch = j.branch;
    row.state = to_string(j.state);
    if (j.outcome && j.state == JobState::Finished) {
      const JobOutcome& o = *j.outcome;
      row.status = o.status;
      row.attempt = o.attempt;
      row.runner = o.runner;
      row.tests_run = o.tests_run;
      row.tests_failed = o.tests_failed;
      row.duration_ms = o.duration_ms;
    } else {
      row.attempt = j.attempt;
      row.runner = j.attempt ? j.current_runner() : "";
    }
    reply.jobs.push_back(std::move(row));
  }
  return to_reply(reply);
}

}  // namespace ci
