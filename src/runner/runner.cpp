#include "runner.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "ci/git.h"

namespace ci::runner {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint16_t kFirstPort = 8900;
constexpr uint16_t kLastPort = 9000;

Response error_response(const std::string& reason, const std::string& peer) {
  spdlog::warn("refused a message from {}: {}", peer, reason);
  return Response{serialize_reply(Reply::err(reason)), true};
}

std::string count_text(int64_t n) { return n < 0 ? "?" : std::to_string(n); }

}  // namespace

Runner::Runner(RunnerOptions options)
    : options_(std::move(options)),
      registration_(Clock::now(), options_.dispatcher_timeout,
                    Backoff(options_.retry_initial, options_.retry_max)) {}

Runner::~Runner() { stop(); }

std::string Runner::address() const { return HostPort{options_.host, port_}.str(); }

Result<void> Runner::start() {
  const std::string& path = options_.job.repo;
  auto repo = git::Repository::open(path);
  if (!repo) return Error{repo.error()};
  if (!repo->has_remote("origin"))
    return make_error("the repository at '" + path + "' has no remote 'origin'");
  if (auto listening = listen(); !listening) return listening;
  std::error_code ec;
  std::string shown_path = std::filesystem::absolute(path, ec).lexically_normal().string();
  spdlog::info("listening on {}, repository {}, dispatcher {}", address(), ec ? path : shown_path,
               options_.dispatcher.str());
  worker_ = std::thread([this] { work(); });
  liaison_ = std::thread([this] { keep_registered(); });
  return {};
}

Result<void> Runner::listen() {
  ServerOptions server_options;
  server_options.host = options_.host;
  // Peers send the runner headers only; a body can only be a mistake.
  server_options.limits.max_body = 64u << 10;
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
  return error_response("not a runner verb '" + frame.verb() + "'", peer);
}

Reply Runner::handle_ping() {
  std::lock_guard lock(mu_);
  registration_.heard(Clock::now());
  if (!job_) return Reply::pong({"idle"});
  return Reply::pong({"busy", std::to_string(job_->job), std::to_string(job_->attempt)});
}

Reply Runner::handle_runtest(const RuntestRequest& request) {
  {
    std::lock_guard lock(mu_);
    registration_.heard(Clock::now());
    if (stopping_) return Reply::busy();
    if (job_) {
      // The dispatcher repeating a runtest whose OK it lost: still the same job.
      bool same = job_->job == request.job && job_->attempt == request.attempt &&
                  job_->commit == request.commit;
      return same ? Reply::ok() : Reply::busy();
    }
    job_ = request;
    job_started_ = false;
  }
  changed_.notify_all();
  spdlog::info("job {} attempt {} commit {}: accepted (branch {})", request.job, request.attempt,
               request.commit, request.branch);
  return Reply::ok();
}

void Runner::work() {
  LineClient dispatcher(options_.dispatcher.host, options_.dispatcher.port);
  std::unique_lock lock(mu_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || (job_ && !job_started_); });
    if (stopping_) return;
    job_started_ = true;
    const RuntestRequest job = *job_;
    lock.unlock();

    spdlog::info("job {} attempt {} commit {}: running", job.job, job.attempt, job.commit);
    TestJobOutcome outcome = run_test_job(options_.job, job, address(), &cancel_);
    const ResultsRequest& results = outcome.results;
    if (outcome.cancelled) {
      spdlog::info("job {} attempt {} commit {}: cancelled by shutdown, not reported", job.job,
                   job.attempt, job.commit);
    } else {
      spdlog::info("job {} attempt {} commit {}: {} ({} run, {} failed, {} ms)", job.job,
                   job.attempt, job.commit, to_string(results.status),
                   count_text(results.tests_run), count_text(results.tests_failed),
                   results.duration_ms);
      deliver(dispatcher, job, results);
      dispatcher.close();
    }

    lock.lock();
    job_.reset();
    if (!stopping_)
      spdlog::info("job {} attempt {} commit {}: done, idle", job.job, job.attempt, job.commit);
  }
}

void Runner::deliver(LineClient& dispatcher, const RuntestRequest& job,
                     const ResultsRequest& results) {
  const std::string& commit = job.commit;
  const Request message{results};
  Backoff backoff(options_.retry_initial, options_.retry_max);
  bool failing = false;
  while (true) {
    auto reply = dispatcher.call(message);
    if (reply && reply->kind == Reply::Kind::Ok) {
      spdlog::info("job {} attempt {} commit {}: results delivered", results.job, results.attempt,
                   commit);
      return;
    }
    if (reply && reply->kind == Reply::Kind::Err) {
      spdlog::warn("job {} attempt {} commit {}: the dispatcher refused the results: {}",
                   results.job, results.attempt, commit, reply->reason());
      return;
    }
    if (!failing) {
      std::string why =
          reply ? "unexpected reply " + serialize(serialize_reply(*reply)) : reply.error();
      spdlog::warn("job {} attempt {} commit {}: cannot deliver the results ({}); retrying",
                   results.job, results.attempt, commit, why);
      failing = true;
    }
    auto retry_at = Clock::now() + backoff.next();
    std::unique_lock lock(mu_);
    if (changed_.wait_until(lock, retry_at, [&] { return stopping_; })) {
      spdlog::warn("job {} attempt {} commit {}: stopping, results not delivered", results.job,
                   results.attempt, commit);
      return;
    }
  }
}

void Runner::keep_registered() {
  ClientOptions client_options;
  client_options.io_timeout = std::chrono::seconds(5);
  LineClient dispatcher(options_.dispatcher.host, options_.dispatcher.port, client_options);
  const Request message{RegisterRequest{options_.host, port_}};
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (!registration_.due(Clock::now())) {
      changed_.wait_until(lock, registration_.next_attempt());
      continue;
    }
    bool renewal = registration_.registered();
    lock.unlock();
    auto reply = dispatcher.call(message);
    dispatcher.close();
    lock.lock();
    auto now = Clock::now();
    if (reply && reply->kind == Reply::Kind::Ok) {
      registration_.succeeded(now);
      if (renewal) {
        spdlog::info("registered again with the dispatcher at {}: nothing heard from it for {} ms",
                     options_.dispatcher.str(), options_.dispatcher_timeout.count());
      } else {
        spdlog::info("registered with the dispatcher at {} as {}", options_.dispatcher.str(),
                     address());
      }
      continue;
    }
    std::string why = !reply                            ? reply.error()
                      : reply->kind == Reply::Kind::Err ? "refused: " + reply->reason()
                                                        : "unexpected reply";
    if (registration_.failed(now)) {
      spdlog::warn("cannot register with the dispatcher at {} ({}); retrying, at most every {} ms",
                   options_.dispatcher.str(), why, options_.retry_max.count());
    }
  }
}

void Runner::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cancel_.cancel();
  changed_.notify_all();
  if (server_) server_->stop();
  if (worker_.joinable()) worker_.join();
  if (liaison_.joinable()) liaison_.join();
}

}  // namespace ci::runner
