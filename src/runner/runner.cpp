#include "runner/runner.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "ci/auth.h"
#include "ci/git.h"
#include "ci/replies.h"
#include "runner/runner_internal.h"

namespace ci::runner {
namespace {

constexpr uint16_t kFirstPort = 8900;
// How long a finished job's results wait for the last lines of its live log.
constexpr std::chrono::milliseconds kLastLogWait{500};
constexpr uint16_t kLastPort = 9000;

Response error_response(const std::string& reason, const std::string& peer) {
  spdlog::warn("refused a message from {}: {}", peer, reason);
  return Response{serialize_reply(Reply::err(reason)), true};
}

std::string count_text(int64_t n) { return n < 0 ? "?" : std::to_string(n); }

// The note of slot `slot`'s running test in the state folder.
std::string running_test_file(const std::string& state_dir, size_t slot) {
  std::string name = slot == 0 ? "running-test" : "running-test." + std::to_string(slot);
  return (std::filesystem::path(state_dir) / name).string();
}

// Absolute: the jobs' checkouts are made under it, and bind-mounted by path.
std::string state_dir_of(const RunnerOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!options.state_dir.empty())
    return fs::absolute(options.state_dir, ec).lexically_normal().string();
  if (options.job.repo.empty())
    return (fs::absolute(options.workdir, ec).lexically_normal() / "state").string();
  fs::path repo = fs::absolute(options.job.repo, ec).lexically_normal();
  if (!repo.has_filename()) repo = repo.parent_path();  // "clone/"
  return repo.string() + ".ci-runner";
}

}  // namespace

// Once a job's output of this size or more is freed, malloc_trim gives back the free
// pages it may leave inside the malloc arenas. (Its large blocks themselves go back to
// the system when freed: see main.)
constexpr size_t kTrimAfter = 256u << 10;

void release_memory(size_t freed, Mutex& mutex) {
  if (freed < kTrimAfter) return;
  run_unlocked(mutex, [] { ::malloc_trim(0); });
}

std::string describe(const RuntestRequest& job) {
  return "job " + std::to_string(job.job) + " attempt " + std::to_string(job.attempt) + " commit " +
         job.commit;
}

std::string describe(const SpooledResult& result) {
  return "job " + std::to_string(result.job) + " attempt " + std::to_string(result.attempt);
}

Runner::Runner(RunnerOptions options)
    : options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : Clock::real()),
      state_dir_(state_dir_of(options_)),
      job_options_(options_.job),
      spool_(options_.spool_dir.empty() ? (std::filesystem::path(state_dir_) / "spool").string()
                                        : options_.spool_dir),
      delivery_backoff_(options_.retry_initial, options_.retry_max),
      registration_(clock_.now(), options_.dispatcher_timeout,
                    Backoff(options_.retry_initial, options_.retry_max)) {
  job_options_.clock = &clock_;
  const size_t slots = std::clamp<uint32_t>(options_.slots, 1, kMaxSlots);
  for (size_t i = 0; i < slots; ++i)
    running_jobs_.push_back(
        std::make_unique<const RunningJobRecord>(running_test_file(state_dir_, i)));
  MutexLock lock(mu_);
  slots_.resize(slots);
}

RepoScope Runner::scope() const {
  if (options_.workdir.empty()) return RepoScope::Default;
  return options_.job.repo.empty() ? RepoScope::Named : RepoScope::All;
}

size_t Runner::running() const {
  return static_cast<size_t>(
      std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.job.has_value(); }));
}

Runner::~Runner() { stop(); }

LogSenderOptions Runner::log_sender_options() const {
  LogSenderOptions log;
  log.dispatcher = options_.dispatcher;
  log.client.connect_timeout = std::chrono::seconds(2);
  log.client.io_timeout = std::chrono::seconds(5);
  log.client.token = options_.token;
  log.client.service = kDispatcherService;
  log.runner = address();
  // A live log a small fraction of the output's cap: what waits for an absent
  // dispatcher adds to the runner's memory while the output is captured, and larger
  // buffers were seen to stay resident after the job. The whole output still goes
  // with the results.
  log.cap = std::min<size_t>(job_options_.max_output, 256u << 10);
  log.retry_initial = options_.retry_initial;
  log.retry_max = options_.retry_max;
  log.clock = &clock_;
  return log;
}

std::string Runner::address() const { return HostPort{options_.host, port_}.str(); }

Result<void> Runner::start() {
  // Every test runs under the guard: without it no job could run.
  if (::access(default_guard_program().c_str(), X_OK) != 0) {
    return make_error("cannot run " + default_guard_program() + " (" + std::strerror(errno) +
                      "): ci-test-guard belongs in the same folder as ci-runner");
  }
  const std::string& path = options_.job.repo;
  if (path.empty() && options_.workdir.empty())
    return make_error("the runner needs its clone of the repository or a workdir");
  if (!path.empty()) {
    auto repo = git::Repository::open(path);
    if (!repo) return Error{repo.error()};
    // The clone is this runner's alone: a lock file in it is from one that was killed.
    for (const auto& lock : repo->remove_stale_locks())
      spdlog::warn("removed {}, left by a process killed while writing", lock);
    if (!repo->has_remote("origin"))
      return make_error("the repository at '" + path + "' has no remote 'origin'");
    MutexLock lock(clone_mu_);
    clone_.emplace(path);
  }
  if (auto opened = open_state(); !opened) return opened;
  if (!options_.workdir.empty()) {
    stores_ = std::make_unique<RepoStores>(options_.workdir);
    if (auto opened = stores_->open(); !opened) return opened;
  }
  if (auto opened = open_spool(); !opened) return opened;
  if (auto prepared = prepare_work_root(); !prepared) return prepared;
  if (auto prepared = prepare_sandbox(); !prepared) return prepared;
  if (auto prepared = prepare_cgroups(); !prepared) return prepared;
  if (auto listening = listen(); !listening) return listening;
  std::error_code ec;
  std::string shown_path = std::filesystem::absolute(path, ec).lexically_normal().string();
  std::string serves = path.empty() ? "" : "repository " + (ec ? path : shown_path);
  if (stores_)
    serves +=
        (serves.empty() ? "" : ", ") + std::string("named repositories in ") + stores_->workdir();
  spdlog::info(
      "listening on {}, {}, dispatcher {}, state {}{}{}", address(), serves,
      options_.dispatcher.str(), state_dir_,
      running_jobs_.size() > 1 ? ", " + std::to_string(running_jobs_.size()) + " slots" : "",
      options_.token.empty() ? "" : ", token required");
  if (job_options_.sandbox.enabled) {
    spdlog::info("tests run in a sandbox ({}), network {}{}", job_options_.sandbox.bwrap,
                 job_options_.sandbox.network ? "on" : "off",
                 job_options_.user.set ? ", as user " + job_options_.user.name : "");
  } else {
    spdlog::warn(
        "the sandbox is off: tests run with the rights of {} and can read what it can, its "
        "token file, spool and clone included",
        job_options_.user.set ? "user " + job_options_.user.name : "the runner");
  }
  started_ = true;
  {
    MutexLock lock(mu_);
    deliver_at_ = clock_.now();
  }
  for (size_t i = 0; i < running_jobs_.size(); ++i) {
    logs_.push_back(std::make_unique<LogSender>(log_sender_options()));
    logs_.back()->start();
  }
  for (size_t i = 0; i < running_jobs_.size(); ++i) workers_.emplace_back([this, i] { work(i); });
  liaison_ = std::thread([this] { keep_in_touch(); });
  return {};
}

Result<void> Runner::open_spool() {
  if (auto opened = spool_.open(); !opened) return make_error("spool: " + opened.error());
  ::chmod(spool_.dir().c_str(), 0700);
  take_up_old_spool();
  // Every slot's note, those of more slots than this run has included.
  std::vector<RunningJobRecord> records;
  for (size_t i = 0; i < kMaxSlots; ++i) records.emplace_back(running_test_file(state_dir_, i));
  if (!options_.job.repo.empty()) records.emplace_back(old_spool_dir() + "/running-test");
  for (const RunningJobRecord& record : records) {
    if (auto left = record.kill_leftovers()) {
      spdlog::warn(
          "killed {} process(es) left running by job {} attempt {} (process group {}) "
          "when an earlier run of the runner was killed",
          left->processes, left->job, left->attempt, left->group);
    }
  }
  std::vector<std::string> problems;
  std::vector<SpooledResult> found = spool_.load(&problems);
  for (const auto& problem : problems) spdlog::warn("spool: {}", problem);
  MutexLock lock(mu_);
  for (auto& result : found) {
    spdlog::info("{}: results from an earlier run in the spool, delivered once registered",
                 describe(result));
    pending_.push_back(std::make_shared<const SpooledResult>(std::move(result)));
  }
  return {};
}

Result<void> Runner::listen() {
  ServerOptions server_options;
  server_options.host = options_.host;
  // Peers send the runner headers only; a body can only be a mistake.
  server_options.limits.max_body = 64u << 10;
  server_options.token = options_.token;
  server_options.service = kRunnerService;
  auto try_port = [&](uint16_t port) -> Result<void> {
    server_options.port = port;
    auto server = std::make_unique<LineServer>(
        server_options, request_has_body,
        [this](const Frame& request, const std::string& peer) { return handle(request, peer); });
    if (auto started = server->start(); !started) return started;
    port_ = server->port();
    server_ = std::move(server);
    return {};
  };
  if (options_.port) return try_port(*options_.port);
  std::string last_error;
  for (uint16_t port = kFirstPort; port <= kLastPort; ++port) {
    auto started = try_port(port);
    if (started) return {};
    last_error = started.error();
  }
  return make_error("no free port in " + std::to_string(kFirstPort) + "-" +
                    std::to_string(kLastPort) + " on " + options_.host + " (last: " + last_error +
                    ")");
}

Response Runner::handle(const Frame& frame, const std::string& peer) {
  auto request = parse_request(frame);
  if (!request) return error_response(request.error(), peer);
  if (std::holds_alternative<PingRequest>(*request)) return {serialize_reply(handle_ping())};
  if (auto* runtest = std::get_if<RuntestRequest>(&*request))
    return {serialize_reply(handle_runtest(*runtest))};
  if (auto* cancel = std::get_if<CancelRequest>(&*request))
    return {serialize_reply(handle_cancel(*cancel))};
  return error_response("not a runner verb '" + frame.verb() + "'", peer);
}

void Runner::heard_from_dispatcher() {
  auto now = clock_.now();
  bool was_registered = registration_.registered();
  registration_.heard(now);
  if (!pending_.empty()) deliver_at_ = now;
  if (!was_registered || !pending_.empty()) changed_.notify_all();
}

Reply Runner::handle_ping() {
  MutexLock lock(mu_);
  heard_from_dispatcher();
  PongReply pong;
  pong.state = PongReply::State::Idle;
  if (slots_.size() > 1) {
    // Each slot's job; a free slot shows a result not delivered yet, still this
    // runner's job.
    pong.state = PongReply::State::Slots;
    size_t next_pending = 0;
    for (const Slot& slot : slots_) {
      if (slot.job) {
        pong.slots.push_back({slot.job->job, slot.job->attempt});
      } else if (next_pending < pending_.size()) {
        const SpooledResult& result = *pending_[next_pending++];
        pong.slots.push_back({result.job, result.attempt});
      } else {
        pong.slots.push_back({});
      }
    }
    return to_reply(pong);
  }
  const Slot& only = slots_.front();
  if (only.job) {
    pong = {PongReply::State::Busy, only.job->job, only.job->attempt};
  } else if (!pending_.empty()) {
    // A result not delivered yet: the job is still this runner's.
    const SpooledResult& oldest = *pending_.front();
    pong = {PongReply::State::Busy, oldest.job, oldest.attempt};
  }
  return to_reply(pong);
}

Reply Runner::handle_runtest(const RuntestRequest& request) {
  {
    MutexLock lock(mu_);
    heard_from_dispatcher();
    // The dispatcher repeating a runtest whose OK it lost: still the same job.
    for (const Slot& slot : slots_) {
      if (slot.job && slot.job->job == request.job && slot.job->attempt == request.attempt)
        return slot.job->commit == request.commit ? Reply::ok() : Reply::busy();
    }
    for (const auto& result : pending_) {
      if (result->job == request.job && result->attempt == request.attempt) return Reply::ok();
    }
    if (stopping_ || draining_) return Reply::busy();
    // A dispatcher that still thinks this runner serves what it no longer does (it was
    // restarted with other flags and has not registered again yet) has the job given
    // to another runner rather than ended as an error here.
    RepoScope serves = scope();
    if (request.repo.empty() && serves == RepoScope::Named)
      return Reply::err("this runner has no clone of the default repository");
    if (!request.repo.empty() && serves == RepoScope::Default)
      return Reply::err("this runner has no --workdir to fetch repository " + request.repo +
                        " into");
    // A result not delivered yet holds its slot: the job is still this runner's. The
    // one result on its way while the dispatcher already offers the next job does not:
    // it has recorded the result and only the reply is still in flight. Taking the job
    // now saves a heartbeat's wait; the result stays pending until its OK arrives.
    size_t held = pending_.size();
    if (held > 0 && delivering_front_) --held;
    if (running() + held >= slots_.size()) return Reply::busy();
    auto free = std::find_if(slots_.begin(), slots_.end(),
                             [](const Slot& slot) { return !slot.job.has_value(); });
    if (free == slots_.end()) return Reply::busy();
    free->job = request;
    free->started = false;
    free->cancel = std::make_shared<CancelToken>();
    free->cancel_asked = false;
  }
  changed_.notify_all();
  spdlog::info("{}: accepted (branch {})", describe(request), request.branch);
  return Reply::ok();
}

Reply Runner::handle_cancel(const CancelRequest& request) {
  MutexLock lock(mu_);
  heard_from_dispatcher();
  if (request.attempt == 0)
    return Reply::err("a runner cancels an attempt: cancel <job> <attempt>");
  auto slot = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& s) {
    return s.job && s.job->job == request.job && s.job->attempt == request.attempt;
  });
  if (slot == slots_.end()) {
    return Reply::err("not running job " + std::to_string(request.job) + " attempt " +
                      std::to_string(request.attempt));
  }
  if (!slot->cancel_asked) spdlog::info("{}: cancelled by the dispatcher", describe(*slot->job));
  slot->cancel_asked = true;
  slot->cancel->cancel();
  return Reply::ok();
}

void Runner::work(size_t index) {
  MutexLock lock(mu_);
  while (true) {
    while (!stopping_ && !(slots_[index].job && !slots_[index].started)) changed_.wait(lock);
    if (stopping_) return;
    slots_[index].started = true;
    const RuntestRequest job = *slots_[index].job;
    const std::shared_ptr<CancelToken> cancel = slots_[index].cancel;
    lock.unlock();

    logs_[index]->begin(job.job, job.attempt);
    std::shared_ptr<const SpooledResult> spooled = run_job(index, job, cancel.get());
    if (!spooled) return;  // the slot's job stays set: stop() gives it back
    size_t size = spooled->message.body.size();

    lock.lock();
    pending_.push_back(std::move(spooled));
    slots_[index].job.reset();
    slots_[index].cancel.reset();
    deliver_at_ = clock_.now();
    changed_.notify_all();
    // The test's output is gone, its copy in the results message waits for delivery.
    release_memory(size, mu_);
  }
}

Exporter Runner::exporter_for(const RuntestRequest& job, const CancelToken* cancel) {
  if (job.repo.empty()) {
    return [this](const std::string& commit, const std::string& dir) -> Result<void> {
      MutexLock lock(clone_mu_);
      if (!clone_)
        return make_error(
            "this runner has no clone of the default repository: it serves named "
            "repositories only");
      return clone_->export_to(commit, dir);
    };
  }
  return [this, job, cancel](const std::string& commit, const std::string& dir) -> Result<void> {
    if (!stores_) {
      return make_error("this runner has no --workdir: it cannot fetch repository " + job.repo +
                        " from " + job.url);
    }
    return stores_->export_to(job.repo, job.url, commit, dir, cancel);
  };
}

std::shared_ptr<const SpooledResult> Runner::run_job(size_t index, const RuntestRequest& job,
                                                     const CancelToken* cancel) {
  spdlog::info("{}: running{}{}", describe(job), job.repo.empty() ? "" : ", repository " + job.repo,
               running_jobs_.size() > 1 ? " in slot " + std::to_string(index + 1) : "");
  const RunningJobRecord& record = *running_jobs_[index];
  auto note_group = [&](pid_t group) {
    if (auto noted = record.write(group, job); !noted)
      spdlog::warn("{}: cannot note the test's process group: {}", describe(job), noted.error());
  };
  LogSender& log = *logs_[index];
  auto to_log = [&log](std::string_view chunk) { log.append(chunk); };
  JobRunOutcome outcome = runner::run_job(exporter_for(job, cancel), job_options_, job, address(),
                                          cancel, note_group, to_log);
  record.clear();
  if (outcome.cancelled) {
    // The dispatcher's cancel is reported, even while stopping; a stop alone gives the
    // job back instead.
    bool asked = false;
    {
      MutexLock lock(mu_);
      asked = slots_[index].cancel_asked;
    }
    if (!asked) {
      spdlog::info("{}: cancelled by shutdown, not reported", describe(job));
      return nullptr;
    }
    outcome.results.status = TestStatus::Cancelled;
  }
  const ResultsRequest& results = outcome.results;
  spdlog::info("{}: {} ({} run, {} failed, {} ms)", describe(job), to_string(results.status),
               count_text(results.tests_run), count_text(results.tests_failed),
               results.duration_ms);
  SpooledResult spooled = spool_.prepare(std::move(outcome.results));
  if (auto written = spool_.write(spooled); !written) {
    spdlog::error(
        "{}: cannot keep the results in the spool ({}); they are lost if the runner "
        "stops before delivering them",
        describe(job), written.error());
    spooled.path.clear();
  }
  // The last lines of the log reach the dispatcher before the results, unless it is
  // slow or away (then nothing waits long). After the spool, so that a runner stopped
  // while it waits still has the results to deliver.
  log.wait_sent(kLastLogWait);
  return std::make_shared<const SpooledResult>(std::move(spooled));
}

void Runner::drain() {
  MutexLock lock(mu_);
  if (draining_ || stopping_) return;
  draining_ = true;
  if (running() == 1) {
    auto slot = std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.job; });
    spdlog::info(
        "draining: taking no new job; waiting for {} to finish and its results to be "
        "delivered",
        describe(*slot->job));
  } else if (running() > 1) {
    spdlog::info(
        "draining: taking no new job; waiting for {} jobs to finish and their results to be "
        "delivered",
        running());
  } else if (!pending_.empty()) {
    spdlog::info("draining: taking no new job; delivering {} waiting result(s) first",
                 pending_.size());
  } else {
    spdlog::info("draining: taking no new job; nothing running");
  }
  changed_.notify_all();
}

bool Runner::drained() const { return draining_ && running() == 0 && pending_.empty(); }

bool Runner::wait_drained(std::chrono::milliseconds timeout) {
  MutexLock lock(mu_);
  const TimePoint deadline = clock_.now() + timeout;
  while (!drained() && !stopping_ && clock_.now() < deadline)
    clock_.wait_until(changed_, lock, deadline);
  return drained();
}

void Runner::stop() {
  if (stopped_) return;
  stopped_ = true;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    for (const Slot& slot : slots_)
      if (slot.cancel) slot.cancel->cancel();
  }
  changed_.notify_all();
  for (auto& worker : workers_)
    if (worker.joinable()) worker.join();
  if (liaison_.joinable()) liaison_.join();
  for (auto& log : logs_) log->stop();
  if (server_) server_->stop();
  if (started_) say_goodbye();
  if (started_) remove_own_work_root();
}

}  // namespace ci::runner
