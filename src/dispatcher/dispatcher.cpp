#include "dispatcher/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "ci/auth.h"
#include "ci/files.h"
#include "ci/validate.h"

namespace ci {

namespace {

TimePoint now() { return std::chrono::steady_clock::now(); }

std::string count_text(int64_t n) { return n < 0 ? "-" : std::to_string(n); }

}  // namespace

Dispatcher::Dispatcher(DispatcherOptions options)
    : options_(std::move(options)),
      // Result files are as durable as the store: --sync full flushes both.
      writer_(options_.results_dir, options_.sync == SyncMode::Full),
      scheduler_(Scheduler::Options{options_.heartbeat_misses, options_.max_attempts}) {}

Dispatcher::~Dispatcher() { stop(); }

Result<void> Dispatcher::start() {
  if (auto r = writer_.prepare(); !r) return r;
  std::string db_path = ":memory:";
  if (options_.state_dir != ":memory:") {
    if (auto r = make_dirs(options_.state_dir); !r) return r;
    db_path = options_.state_dir + "/state.db";
  }
  auto store = open_sqlite_store(db_path, options_.sync);
  if (!store) return Error{store.error()};
  store_ = std::move(*store);
  auto stored = store_->load();
  if (!stored) return Error{"state database " + db_path + ": " + stored.error()};
  {
    size_t jobs = stored->jobs.size(), runners = stored->runners.size();
    std::unique_lock<std::mutex> lock(mutex_);
    scheduler_.restore(std::move(stored->jobs), stored->runners, now());
    for (bool more = true; more;) {
      if (auto r = save_changes(lock, &more); !r) return r;
    }
    if (jobs || runners)
      spdlog::info("state {}: {} jobs ({} queued, {} running), {} runners to ping", db_path, jobs,
                   scheduler_.queued(), scheduler_.count_jobs(JobState::Running), runners);
  }
  ServerOptions so;
  so.host = options_.host;
  so.port = options_.port;
  so.limits.max_body = options_.max_body;
  so.idle_timeout = options_.idle_timeout;
  so.max_connections = options_.max_connections;
  so.auth_timeout = options_.auth_timeout;
  so.max_unauthenticated_per_address = options_.max_unauthenticated_per_address;
  so.body_budget = options_.body_budget;
  so.token = options_.token;
  so.service = kDispatcherService;
  server_ = std::make_unique<LineServer>(
      so, request_has_body, [this](const Frame& f, const std::string& peer, Responder respond) {
        handle(f, peer, std::move(respond));
      });
  store_thread_ = std::thread([this] { store_loop(); });
  if (auto r = server_->start(); !r) return r;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    plan_offers();
  }
  heartbeat_ = std::thread([this] { heartbeat_loop(); });
  for (size_t i = 0; i < std::max<size_t>(1, options_.offer_threads); ++i)
    redistributors_.emplace_back([this] { redistribution_loop(); });
  return {};
}

void Dispatcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && !store_thread_.joinable()) return;
    stopping_ = true;
  }
  // No new requests first; then the threads, the store thread last so that it
  // writes what they changed.
  if (server_) server_->stop();
  offers_cv_.notify_all();
  stop_cv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  for (auto& t : redistributors_) t.join();
  redistributors_.clear();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    workers_stopped_ = true;
    // Offers never sent go back to the queue, and the store thread writes that last.
    for (const auto& planned : planned_)
      scheduler_.offer_refused(planned.offer, Scheduler::Refusal::Busy, now());
    for (const auto& offer : sendable_)
      scheduler_.offer_refused(offer, Scheduler::Refusal::Busy, now());
    planned_.clear();
    sendable_.clear();
    note_change();
  }
  store_cv_.notify_all();
  if (store_thread_.joinable()) store_thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  waiters_.clear();  // none is left once the store thread has ended
}

void Dispatcher::handle(const Frame& frame, const std::string& peer, Responder respond) {
  auto request = parse_request(frame);
  if (!request) {
    spdlog::warn("bad message from {}: {}", peer, request.error());
    respond({serialize_reply(Reply::err(request.error())), true});
    return;
  }
  Answer answer = [respond = std::move(respond)](const Reply& reply) {
    respond({serialize_reply(reply), reply.kind == Reply::Kind::Err});
  };
  struct Visitor {
    Dispatcher* d;
    Answer& answer;
    void operator()(const StatusRequest&) const { answer(d->on_status()); }
    void operator()(const RegisterRequest& r) const { d->on_register(r, std::move(answer)); }
    void operator()(const DispatchRequest& r) const { d->on_dispatch(r, std::move(answer)); }
    void operator()(const ResultsRequest& r) const { d->on_results(r, std::move(answer)); }
    void operator()(const RunnersRequest&) const { answer(d->on_runners()); }
    void operator()(const JobsRequest& r) const { answer(d->on_jobs(r)); }
    void operator()(const PingRequest&) const { answer(Reply::pong()); }
    void operator()(const RuntestRequest&) const {
      answer(Reply::err("runtest is for runners, not the dispatcher"));
    }
    void operator()(const PollRequest&) const {
      answer(Reply::err("poll is for the observer, not the dispatcher"));
    }
    void operator()(const RetryRequest& r) const { d->on_retry(r, std::move(answer)); }
    void operator()(const AbandonRequest& r) const { d->on_abandon(r, std::move(answer)); }
    void operator()(const UnregisterRequest& r) const { d->on_unregister(r, std::move(answer)); }
  };
  std::visit(Visitor{this, answer}, *request);
}

void Dispatcher::after_save(Saved saved) {
  waiters_.push_back({++change_seq_, std::move(saved)});
  store_cv_.notify_one();
}

void Dispatcher::note_change() {
  if (lazy_pending_) return;
  lazy_pending_ = true;
  lazy_due_ = now() + kLazyWriteDelay;
  store_cv_.notify_one();
}

void Dispatcher::answer_when_saved(std::unique_lock<std::mutex>& lock, Reply reply, Answer answer) {
  plan_offers();  // written in the same transaction as the change that made them possible
  after_save([reply = std::move(reply), answer = std::move(answer)](const Result<void>& saved) {
    if (saved) {
      answer(reply);
    } else {
      answer(Reply::err("cannot store the change: " + saved.error()));
    }
  });
  lock.unlock();
}

void Dispatcher::plan_offers() {
  while (scheduler_.can_offer()) {
    auto offer = scheduler_.next_offer(now());
    if (!offer) break;
    planned_.push_back({++change_seq_, std::move(*offer)});
  }
  if (!planned_.empty()) store_cv_.notify_one();
}

void Dispatcher::store_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    bool awaited = change_seq_ > saved_seq_;
    bool lazy_due = lazy_pending_ && (workers_stopped_ || now() >= lazy_due_);
    if (!awaited && !lazy_due) {
      if (workers_stopped_) break;  // nothing can change any more
      if (lazy_pending_) {
        store_cv_.wait_until(lock, lazy_due_);
      } else {
        store_cv_.wait(lock);
      }
      continue;
    }
    uint64_t upto = change_seq_;
    lazy_pending_ = false;
    bool more = false;
    auto saved = save_changes(lock, &more);
    saved_seq_ = upto;
    if (more) ++change_seq_;  // the gave-up jobs' results, in the next batch
    while (!waiters_.empty() && waiters_.front().ticket <= upto) {
      auto waiter = std::move(waiters_.front());
      waiters_.pop_front();
      waiter.saved(saved);
    }
    // The runners may now hear of the attempts that this write holds.
    bool ready = false;
    while (!planned_.empty() && planned_.front().ticket <= upto) {
      Offer offer = std::move(planned_.front().offer);
      planned_.pop_front();
      if (saved) {
        sendable_.push_back(std::move(offer));
        ready = true;
      } else {
        scheduler_.offer_refused(offer, Scheduler::Refusal::Rejected, now());
        note_change();
      }
    }
    if (ready) offers_cv_.notify_all();
  }
  // Anyone still waiting hears that nothing more will be written.
  auto stopped = make_error("the dispatcher is stopping");
  for (auto& waiter : waiters_) waiter.saved(Result<void>(stopped));
  waiters_.clear();
}

void Dispatcher::on_register(const RegisterRequest& r, Answer answer) {
  std::string address = HostPort{r.host, r.port}.str();
  std::unique_lock<std::mutex> lock(mutex_);
  scheduler_.register_runner(address, now());
  answer_when_saved(lock, Reply::ok(), std::move(answer));
}

void Dispatcher::on_unregister(const UnregisterRequest& r, Answer answer) {
  std::string address = HostPort{r.host, r.port}.str();
  std::unique_lock<std::mutex> lock(mutex_);
  scheduler_.unregister_runner(address, now());
  answer_when_saved(lock, Reply::ok(), std::move(answer));
}

void Dispatcher::on_retry(const RetryRequest& r, Answer answer) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto change = scheduler_.retry(r.job, now());
  if (change == Scheduler::Change::Unknown) {
    lock.unlock();
    return answer(Reply::err("unknown job " + std::to_string(r.job)));
  }
  if (change == Scheduler::Change::NotApplicable) {
    lock.unlock();
    return answer(Reply::err("job " + std::to_string(r.job) + " has not finished"));
  }
  answer_when_saved(lock, Reply::ok({std::to_string(r.job)}), std::move(answer));
}

void Dispatcher::on_abandon(const AbandonRequest& r, Answer answer) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto change = scheduler_.abandon(r.job, r.attempt, r.runner, now());
  if (change == Scheduler::Change::Unknown) {
    lock.unlock();
    return answer(Reply::err("unknown job " + std::to_string(r.job)));
  }
  // NotApplicable: already finished or moved on; nothing for the runner to do either.
  answer_when_saved(lock, Reply::ok(), std::move(answer));
}

void Dispatcher::on_dispatch(const DispatchRequest& r, Answer answer) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto submitted = scheduler_.submit(r.commit, r.branch, now());
  if (!submitted.created)
    spdlog::info("dispatch of {} on {}: already job {}", r.commit, r.branch, submitted.id);
  answer_when_saved(lock, Reply::ok({std::to_string(submitted.id)}), std::move(answer));
}

void Dispatcher::on_results(const ResultsRequest& r, Answer answer) {
  std::unique_lock<std::mutex> lock(mutex_);
  ResultVerdict verdict = scheduler_.check_result(r.job, r.attempt, r.runner);
  switch (verdict) {
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
      scheduler_.release_runner(r.runner, r.job, r.attempt, now());
      return answer_when_saved(lock, Reply::ok(), std::move(answer));
    case ResultVerdict::Accept:
      break;
  }
  Job job = *scheduler_.job(r.job);
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
    scheduler_.abandon_result(r.job, now());
    note_change();
    lock.unlock();
    spdlog::error("cannot record the result of job {}: {}", r.job, written.error());
    return answer(Reply::err("cannot record the result: " + written.error()));
  }
  scheduler_.finish_result(r.job, outcome, now());
  answer_when_saved(lock, Reply::ok(), std::move(answer));
}

Result<void> Dispatcher::save_changes(std::unique_lock<std::mutex>& lock, bool* more) {
  *more = false;
  auto dirty = scheduler_.take_dirty();
  std::vector<Job> rows;
  rows.reserve(dirty.jobs.size());
  for (JobId id : dirty.jobs) rows.push_back(*scheduler_.job(id));
  auto events = scheduler_.take_events();
  std::vector<Job> gave_up;
  for (JobId id : scheduler_.take_gave_up()) gave_up.push_back(*scheduler_.job(id));
  if (dirty.empty() && events.empty() && gave_up.empty()) return {};
  lock.unlock();

  Result<void> saved;
  if (!dirty.empty()) {
    std::vector<const Job*> jobs;
    jobs.reserve(rows.size());
    for (const auto& job : rows) jobs.push_back(&job);
    saved = store_->save(jobs, dirty.runners_added, dirty.runners_removed);
    if (!saved) spdlog::error("cannot write the state database: {}", saved.error());
  }
  for (const auto& e : events) spdlog::info("{}", e.text);
  std::vector<bool> recorded;
  for (const auto& job : gave_up) {
    auto r = writer_.write(job, *job.outcome, "");
    if (!r) spdlog::error("cannot record the result of job {}: {}", job.id, r.error());
    recorded.push_back(r.ok());
  }

  lock.lock();
  if (!saved) scheduler_.return_dirty(std::move(dirty));
  for (size_t i = 0; i < gave_up.size(); ++i) {
    if (recorded[i]) {
      scheduler_.finish_result(gave_up[i].id, *gave_up[i].outcome, now());
    } else {
      scheduler_.abandon_result(gave_up[i].id, now());
    }
    *more = true;
  }
  return saved;
}

Reply Dispatcher::on_status() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<std::string, size_t> runners, results;
  for (const auto& [addr, r] : scheduler_.runners()) runners[to_string(r.state)]++;
  size_t running = 0, finished = 0;
  for (const auto& [id, j] : scheduler_.jobs()) {
    if (j.state == JobState::Running || j.state == JobState::Offered ||
        j.state == JobState::Finishing)
      running++;
    if (j.state == JobState::Finished) {
      finished++;
      results[to_string(j.outcome->status)]++;
    }
  }
  std::ostringstream body;
  body << "runners " << scheduler_.runners().size() << "\n";
  body << "runners-idle " << runners["idle"] << "\n";
  body << "runners-busy " << runners["running"] + runners["offered"] + runners["busy"] << "\n";
  body << "runners-unreachable " << runners["unreachable"] << "\n";
  body << "jobs-queued " << scheduler_.queued() << "\n";
  body << "jobs-running " << running << "\n";
  body << "jobs-finished " << finished << "\n";
  for (const char* s : {"passed", "failed", "error", "timeout"})
    body << "jobs-" << s << " " << results[s] << "\n";
  body << "results-dir " << writer_.dir() << "\n";
  return Reply::ok_with_body(body.str());
}

Reply Dispatcher::on_runners() {
  std::lock_guard<std::mutex> lock(mutex_);
  auto t = now();
  std::ostringstream body;
  body << "address state job attempt jobs-done last-seen-ms\n";
  for (const auto& [addr, r] : scheduler_.runners()) {
    auto seen = std::chrono::duration_cast<std::chrono::milliseconds>(t - r.last_seen).count();
    body << addr << " " << to_string(r.state) << " " << (r.job ? std::to_string(r.job) : "-") << " "
         << (r.job ? std::to_string(r.attempt) : "-") << " " << r.jobs_done << " " << seen << "\n";
  }
  return Reply::ok_with_body(body.str());
}

Reply Dispatcher::on_jobs(const JobsRequest& r) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream body;
  body << "id commit branch state status attempt runner tests-run tests-failed duration-ms\n";
  const auto& jobs = scheduler_.jobs();
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

void Dispatcher::heartbeat_loop() {
  using std::chrono::milliseconds;
  std::map<std::string, std::unique_ptr<LineClient>> clients;
  auto timeout = std::min(options_.heartbeat_interval, milliseconds(2000));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    auto next = now() + options_.heartbeat_interval;
    stop_cv_.wait_until(lock, next, [&] { return stopping_; });
    if (stopping_) break;
    auto targets = scheduler_.ping_targets(now() - options_.heartbeat_interval);
    lock.unlock();

    std::map<std::string, std::unique_ptr<LineClient>> kept;
    std::vector<std::pair<PingTarget, std::optional<RunnerReport>>> answers;
    for (const auto& target : targets) {
      auto& client = clients[target.runner];
      if (!client) {
        auto hp = parse_host_port(target.runner);
        ClientOptions co;
        co.connect_timeout = timeout;
        co.io_timeout = timeout;
        co.token = options_.token;
        co.service = kRunnerService;
        client = std::make_unique<LineClient>(hp ? hp->host : "", hp ? hp->port : 0, co);
      }
      auto reply = client->call(PingRequest{});
      std::optional<RunnerReport> report;
      if (reply && reply->kind == Reply::Kind::Pong) {
        RunnerReport rr;
        const auto& a = reply->args;
        rr.known = !a.empty();
        rr.busy = !a.empty() && a[0] == "busy";
        if (rr.busy && a.size() == 3) {
          rr.job = parse_u64(a[1]).value_or(0);
          rr.attempt = static_cast<uint32_t>(parse_u64(a[2], UINT32_MAX).value_or(0));
        }
        report = rr;
      } else if (!reply && client->busy()) {
        // The runner is there, only out of connection slots (a test flooding its port,
        // say): not a missed ping, and nothing learned either.
        spdlog::info("ping to {}: busy (too many connections); asked again next round",
                     target.runner);
        kept[target.runner] = std::move(client);
        continue;
      } else {
        spdlog::debug("ping to {} failed: {}", target.runner,
                      reply ? "unexpected reply" : reply.error());
      }
      answers.emplace_back(target, report);
      kept[target.runner] = std::move(client);
    }
    clients.swap(kept);  // forget the clients of runners that are gone

    lock.lock();
    auto t = now();
    for (const auto& [target, report] : answers) {
      if (report) {
        scheduler_.ping_answered(target, *report, t);
      } else {
        scheduler_.ping_missed(target, t);
      }
    }
    plan_offers();
    note_change();
  }
}

std::unique_ptr<LineClient> Dispatcher::take_client(const std::string& runner,
                                                    std::chrono::milliseconds timeout) {
  {
    std::lock_guard<std::mutex> lock(clients_mutex_);
    auto it = clients_.find(runner);
    if (it != clients_.end()) {
      auto client = std::move(it->second);
      clients_.erase(it);
      return client;
    }
  }
  auto hp = parse_host_port(runner);
  ClientOptions co;
  co.connect_timeout = std::min(timeout, std::chrono::milliseconds(2000));
  co.io_timeout = timeout;
  co.token = options_.token;
  co.service = kRunnerService;
  return std::make_unique<LineClient>(hp ? hp->host : "", hp ? hp->port : 0, co);
}

void Dispatcher::give_client(const std::string& runner, std::unique_ptr<LineClient> client) {
  std::lock_guard<std::mutex> lock(clients_mutex_);
  // Bounded: runners come and go.
  if (clients_.size() >= 4096) clients_.clear();
  clients_.emplace(runner, std::move(client));
}

void Dispatcher::redistribution_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    offers_cv_.wait(lock, [&] { return stopping_ || !sendable_.empty(); });
    if (stopping_) break;
    std::optional<Offer> offer = std::move(sendable_.front());
    sendable_.pop_front();
    lock.unlock();

    auto client = take_client(offer->runner, std::chrono::milliseconds(5000));
    auto reply =
        client->call(RuntestRequest{offer->job, offer->attempt, offer->commit, offer->branch});
    // Out of connection slots, the runner is alive: the job goes back to the queue as for
    // BUSY, without counting against the runner.
    const bool slots_full = !reply && client->busy();
    give_client(offer->runner, std::move(client));

    lock.lock();
    auto t = now();
    if (reply && reply->kind == Reply::Kind::Ok) {
      scheduler_.offer_accepted(*offer, t);
    } else if (slots_full || (reply && reply->kind == Reply::Kind::Busy)) {
      spdlog::info("runner {} is busy; job {} goes back to the queue", offer->runner, offer->job);
      scheduler_.offer_refused(*offer, Scheduler::Refusal::Busy, t);
    } else if (reply) {
      spdlog::warn("runner {} refused job {}: {}", offer->runner, offer->job, reply->reason());
      scheduler_.offer_refused(*offer, Scheduler::Refusal::Rejected, t);
    } else {
      spdlog::warn("cannot reach runner {} for job {}: {}", offer->runner, offer->job,
                   reply.error());
      scheduler_.offer_refused(*offer, Scheduler::Refusal::Unreachable, t);
    }
    plan_offers();
    note_change();
  }
}

}  // namespace ci
