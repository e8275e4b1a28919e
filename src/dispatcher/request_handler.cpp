#include "dispatcher/request_handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ci/replies.h"
#include "ci/validate.h"

namespace ci {

namespace {

// Whether a runner's attempt has ended for its log: its runner was taken for lost or
// gave it back, or the job has a result. A cancelled attempt goes on until its runner
// says it has stopped (its log's last lines come before that).
bool attempt_ended(const Job& job, uint32_t attempt) {
  if (attempt < job.attempt) return true;
  if (job.state == JobState::Queued) return attempt == job.attempt;
  if (job.state != JobState::Finishing && job.state != JobState::Finished) return false;
  return !(job.outcome && job.outcome->status == TestStatus::Cancelled &&
           job.outcome->attempt == attempt);
}

std::string ended_text(JobId job, uint32_t attempt) {
  return "job " + std::to_string(job) + " attempt " + std::to_string(attempt) + " has ended";
}

}  // namespace

RequestHandler::RequestHandler(GuardedScheduler& state, GroupCommitter& committer,
                               OfferSender& offers, const ResultWriter& writer, Feed feed,
                               Clock& clock)
    : state_(state),
      committer_(committer),
      offers_(offers),
      writer_(writer),
      feed_(feed),
      clock_(clock) {}

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
    void operator()(const LogRequest& r) const { h->on_log(r, std::move(answer)); }
    void operator()(const LogReadRequest& r) const { answer(h->on_logread(r)); }
    void operator()(const CancelRequest& r) const { h->on_cancel(r, std::move(answer)); }
    void operator()(const TestsRequest& r) const { answer(h->on_tests(r)); }
    void operator()(const JobRequest& r) const { answer(h->on_job(r)); }
    void operator()(const EventsRequest& r) const { h->feed_.hub.read(r, std::move(answer)); }
    void operator()(const SnapshotRequest& r) const { answer(h->on_snapshot(r)); }
    void operator()(const RepoRequest& r) const { h->on_repo(r, std::move(answer)); }
    void operator()(const ReposRequest&) const { answer(h->on_repos()); }
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
  RunnerSpec spec;
  spec.slots = r.slots;
  spec.labels = r.labels;
  spec.scope = r.repos;
  state_.scheduler.register_runner(HostPort{r.host, r.port}.str(), clock_.now(), spec);
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
  CommitInfo info;
  if (!r.info.empty()) {
    // Checked by the parser; a failure here would be a bug, not bad input.
    if (auto parsed = parse_commit_info(r.info)) info = std::move(*parsed);
  }
  MutexLock lock(state_.mutex);
  if (!r.repo.empty() && !state_.scheduler.repo(r.repo)) {
    lock.unlock();
    return answer(Reply::err("unknown repository '" + r.repo + "' (announce it with: repo " +
                             r.repo + " <url>)"));
  }
  auto submitted =
      state_.scheduler.submit(r.commit, r.branch, clock_.now(), info, r.repo, r.required);
  if (!submitted.created)
    spdlog::info("dispatch of {} on {}: already job {}", r.commit, r.branch, submitted.id);
  answer_when_saved(Reply::ok({std::to_string(submitted.id)}), std::move(answer));
}

void RequestHandler::on_repo(const RepoRequest& r, Answer answer) {
  std::string bad = check_repo_name(r.name);
  if (bad.empty()) bad = check_repo_url(r.url);
  if (!bad.empty()) return answer(Reply::err(bad));
  MutexLock lock(state_.mutex);
  const Repository* known = state_.scheduler.repo(r.name);
  Repository repo{r.name, r.url, r.newest_first};
  if (!known || !(*known == repo)) {
    state_.scheduler.set_repo(repo);
    spdlog::info("repository {} at {}{}", r.name, r.url, r.newest_first ? ", newest first" : "");
  }
  answer_when_saved(Reply::ok(), std::move(answer));
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
      answer_when_saved(Reply::ok(), std::move(answer));
      lock.unlock();
      feed_.logs.finish(r.job, r.attempt);  // that attempt has ended too
      return;
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
  std::vector<TestCase> cases;
  if (!r.cases.empty()) {
    if (auto parsed = parse_cases(r.cases)) cases = std::move(*parsed);
  }
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
  scheduler.finish_result(r.job, outcome, clock_.now(), std::move(cases));
  answer_when_saved(Reply::ok(), std::move(answer));
  lock.unlock();
  feed_.logs.finish(r.job, r.attempt);
}

void RequestHandler::on_log(const LogRequest& r, Answer answer) {
  std::string refused;
  {
    MutexLock lock(state_.mutex);
    const Job* job = state_.scheduler.job(r.job);
    if (!job) {
      refused = "unknown job " + std::to_string(r.job);
    } else if (r.attempt > job->runners.size() || job->runners[r.attempt - 1] != r.runner) {
      refused = "job " + std::to_string(r.job) + " attempt " + std::to_string(r.attempt) +
                " was not given to " + r.runner;
    } else if (attempt_ended(*job, r.attempt)) {
      refused = ended_text(r.job, r.attempt);
    }
  }
  if (!refused.empty()) return answer(Reply::err(refused));
  // The log is not the store: appended at once, and a lost append is sent again by the
  // runner from the size it hears back.
  auto received = feed_.logs.append(r.job, r.attempt, r.offset, r.bytes);
  if (!received) {
    spdlog::error("cannot append to the log of job {} attempt {}: {}", r.job, r.attempt,
                  received.error());
    return answer(Reply::err("cannot append to the log: " + received.error()));
  }
  // Not taken: the attempt ended after the check above, and its finished log takes
  // nothing more.
  if (*received < r.offset + r.bytes.size())
    return answer(Reply::err(ended_text(r.job, r.attempt)));
  {
    MutexLock lock(state_.mutex);
    state_.scheduler.log_grew(r.job, r.attempt, *received, clock_.now());
    committer_.note_change();
  }
  answer(Reply::ok({std::to_string(*received)}));
}

void RequestHandler::on_cancel(const CancelRequest& r, Answer answer) {
  if (r.attempt != 0) return answer(Reply::err("cancel <job> <attempt> is for runners"));
  MutexLock lock(state_.mutex);
  auto cancelled = state_.scheduler.cancel(r.job, "cancelled by request", clock_.now());
  if (cancelled.change == Scheduler::Change::Done) {
    if (!cancelled.runner.empty()) feed_.cancels.send(cancelled.runner, r.job, cancelled.attempt);
    return answer_when_saved(Reply::ok({std::to_string(r.job)}), std::move(answer));
  }
  lock.unlock();
  if (cancelled.change == Scheduler::Change::Unknown)
    return answer(Reply::err("unknown job " + std::to_string(r.job)));
  answer(Reply::err("job " + std::to_string(r.job) + " has finished"));
}

namespace {

// A runner's state over its slots: a one-slot runner's is its slot's.
RunnerState runner_state(const std::vector<const RunnerRecord*>& slots, uint32_t* busy,
                         const RunnerRecord** shown) {
  *busy = 0;
  *shown = slots.front();
  size_t suspect = 0;
  for (RunnerState s : {RunnerState::Running, RunnerState::Offered, RunnerState::BusyUnknown}) {
    for (const RunnerRecord* r : slots) {
      if (r->state != s) continue;
      if (*busy == 0) *shown = r;
      ++*busy;
    }
  }
  for (const RunnerRecord* r : slots) suspect += r->state == RunnerState::Suspect;
  if (*busy) return (*shown)->state;
  return suspect == slots.size() ? RunnerState::Suspect : RunnerState::Idle;
}

}  // namespace

Reply RequestHandler::on_status() {
  MutexLock lock(state_.mutex);
  const Scheduler& scheduler = state_.scheduler;
  StatusReply status;
  for (const auto& [addr, first] : scheduler.runners()) {
    if (first.slot != 0) continue;
    status.runners++;
    uint32_t busy = 0;
    const RunnerRecord* shown = nullptr;
    switch (runner_state(scheduler.slots_of(first.address), &busy, &shown)) {
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
      case TestStatus::Cancelled:
        status.jobs_cancelled++;
        break;
    }
  }
  status.jobs_queued = scheduler.queued();
  status.jobs_waiting = scheduler.count_waiting();
  status.repos = scheduler.repos().size();
  status.results_dir = writer_.dir();
  return to_reply(status);
}

Reply RequestHandler::on_runners() {
  MutexLock lock(state_.mutex);
  auto t = clock_.now();
  RunnersReply reply;
  for (const auto& [addr, first] : state_.scheduler.runners()) {
    if (first.slot != 0) continue;
    auto slots = state_.scheduler.slots_of(first.address);
    RunnerRow row;
    const RunnerRecord* shown = nullptr;
    row.address = first.address;
    row.state = to_string(runner_state(slots, &row.busy, &shown));
    row.job = shown->job;
    row.attempt = shown->job ? shown->attempt : 0;
    for (const RunnerRecord* r : slots) row.jobs_done += r->jobs_done;
    row.last_seen_ms = static_cast<uint64_t>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(t - first.last_seen).count()));
    row.slots = first.spec.slots;
    row.labels = first.spec.labels;
    row.repos = first.spec.scope;
    reply.runners.push_back(std::move(row));
  }
  return to_reply(reply);
}

}  // namespace ci
