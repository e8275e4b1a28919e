#include "dispatcher/request_handler.h"

#include <spdlog/spdlog.h>

#include <map>
#include <sstream>

#include "ci/validate.h"

namespace ci {

namespace {

std::string count_text(int64_t n) { return n < 0 ? "-" : std::to_string(n); }

}  // namespace

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
  std::map<std::string, size_t> runners, results;
  for (const auto& [addr, r] : scheduler.runners()) runners[to_string(r.state)]++;
  size_t running = 0, finished = 0;
  for (const auto& [id, j] : scheduler.jobs()) {
    if (j.state == JobState::Running || j.state == JobState::Offered ||
        j.state == JobState::Finishing)
      running++;
    if (j.state == JobState::Finished) {
      finished++;
      results[to_string(j.outcome->status)]++;
    }
  }
  std::ostringstream body;
  body << "runners " << scheduler.runners().size() << "\n";
  body << "runners-idle " << runners["idle"] << "\n";
  body << "runners-busy " << runners["running"] + runners["offered"] + runners["busy"] << "\n";
  body << "runners-unreachable " << runners["unreachable"] << "\n";
  body << "jobs-queued " << scheduler.queued() << "\n";
  body << "jobs-running " << running << "\n";
  body << "jobs-finished " << finished << "\n";
  for (const char* s : {"passed", "failed", "error", "timeout"})
    body << "jobs-" << s << " " << results[s] << "\n";
  body << "results-dir " << writer_.dir() << "\n";
  return Reply::ok_with_body(body.str());
}

Reply RequestHandler::on_runners() {
  MutexLock lock(state_.mutex);
  auto t = clock_.now();
  std::ostringstream body;
  body << "address state job attempt jobs-done last-seen-ms\n";
  for (const auto& [addr, r] : state_.scheduler.runners()) {
    auto seen = std::chrono::duration_cast<std::chrono::milliseconds>(t - r.last_seen).count();
    body << addr << " " << to_string(r.state) << " " << (r.job ? std::to_string(r.job) : "-") << " "
         << (r.job ? std::to_string(r.attempt) : "-") << " " << r.jobs_done << " " << seen << "\n";
  }
  return Reply::ok_with_body(body.str());
}

Reply RequestHandler::on_jobs(const JobsRequest& r) {
  MutexLock lock(state_.mutex);
  std::ostringstream body;
  body << "id commit branch state status attempt runner tests-run tests-failed duration-ms\n";
  const auto& jobs = state_.scheduler.jobs();
  // Bounded: one reply is at most about a megabyte.
  const uint64_t limit = std::min(r.limit, kMaxJobsListed);
  std::vector<const Job*> newest;
  newest.reserve(std::min<uint64_t>(limit, jobs.size()));
  for (auto it = jobs.rbegin(); it != jobs.rend() && newest.size() < limit; ++it)
    newest.push_back(&it->second);
  for (auto it = newest.rbegin(); it != newest.rend(); ++it) {
    const Job& j = **it;
    body << j.id << " " << j.commit << " " << j.branch << " " << to_string(j.state) << " ";
    if (j.outcome && j.state == JobState::Finished) {
      const JobOutcome& o = *j.outcome;
      body << to_string(o.status) << " " << o.attempt << " " << o.runner << " "
           << count_text(o.tests_run) << " " << count_text(o.tests_failed) << " " << o.duration_ms
           << "\n";
    } else {
      body << "- " << (j.attempt ? std::to_string(j.attempt) : "-") << " "
           << (j.attempt ? j.current_runner() : "-") << " - - -\n";
    }
  }
  return Reply::ok_with_body(body.str());
}

}  // namespace ci
