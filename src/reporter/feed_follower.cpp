#include "reporter/feed_follower.h"

#include <spdlog/spdlog.h>

#include <charconv>

#include "ci/auth.h"
#include "ci/replies.h"

namespace ci::reporter {

namespace {

bool parse_u64(const std::string& text, uint64_t* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// The reply to `request`, an error unless it is OK with `args` words.
Result<Reply> call_ok(LineClient& client, const Request& request, size_t args) {
  auto reply = client.call(request);
  if (!reply) return reply;
  if (reply->kind != Reply::Kind::Ok)
    return make_error(client.address() + " answered: " + reply->reason());
  if (reply->args.size() != args)
    return make_error(client.address() + ": a reply with " + std::to_string(reply->args.size()) +
                      " words where " + std::to_string(args) + " were expected");
  return reply;
}

Result<std::vector<JobInfo>> parse_jobs(std::string_view body) {
  std::vector<JobInfo> jobs;
  while (!body.empty()) {
    auto end = body.find('\n');
    std::string_view line = body.substr(0, end);
    body.remove_prefix(end == std::string_view::npos ? body.size() : end + 1);
    if (line.empty()) continue;
    auto job = parse_job_info(line);
    if (!job) return Error{job.error()};
    jobs.push_back(std::move(*job));
  }
  return jobs;
}

}  // namespace

FeedFollower::FeedFollower(FollowerOptions options, ReadModel& model, FollowerListener listener)
    : options_(std::move(options)), model_(model), listener_(std::move(listener)) {}

FeedFollower::~FeedFollower() { stop(); }

void FeedFollower::start() {
  thread_ = std::thread([this] { run(); });
}

void FeedFollower::stop() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t FeedFollower::rebuilds() {
  MutexLock lock(mutex_);
  return rebuilds_;
}

bool FeedFollower::connected() {
  MutexLock lock(mutex_);
  return connected_;
}

bool FeedFollower::stopping() {
  MutexLock lock(mutex_);
  return stopping_;
}

void FeedFollower::set_connected(bool connected) {
  MutexLock lock(mutex_);
  connected_ = connected;
}

bool FeedFollower::pause(std::chrono::milliseconds delay) {
  MutexLock lock(mutex_);
  TimePoint deadline = options_.clock->now() + delay;
  while (!stopping_ && options_.clock->now() < deadline)
    options_.clock->wait_until(wake_, lock, deadline);
  return !stopping_;
}

void FeedFollower::run() {
  ClientOptions client_options;
  client_options.token = options_.token;
  if (!options_.token.empty()) client_options.service = kDispatcherService;
  // The call waits up to `wait` for news: the reply may take that long and a little.
  client_options.io_timeout = options_.wait + std::chrono::milliseconds(10000);
  client_options.limits.max_body = 64u << 20;
  LineClient client(options_.host, options_.port, client_options);
  std::chrono::milliseconds delay = options_.retry_initial;
  while (!stopping()) {
    auto from = model_.last_seq();
    Result<void> r = from ? follow_once(client, *from) : Result<void>(Error{from.error()});
    if (r) {
      if (!connected()) spdlog::info("following the feed of {}", client.address());
      set_connected(true);
      delay = options_.retry_initial;
      continue;
    }
    if (connected() || delay == options_.retry_initial)
      spdlog::warn("feed of {}: {}; trying again", client.address(), r.error());
    set_connected(false);
    client.close();
    if (!pause(delay)) break;
    delay = std::min(delay * 2, options_.retry_max);
  }
}

Result<void> FeedFollower::follow_once(LineClient& client, uint64_t from) {
  auto reply = call_ok(
      client, EventsRequest{from, options_.batch, static_cast<uint64_t>(options_.wait.count())}, 2);
  if (!reply) return Error{reply.error()};
  uint64_t oldest = 0, last = 0;
  if (!parse_u64(reply->args[0], &oldest) || !parse_u64(reply->args[1], &last))
    return make_error("events: a malformed reply");
  if (oldest > 0 && from + 1 < oldest) {
    spdlog::info("the read model (at {}) is behind the feed's oldest event {}: rebuilding", from,
                 oldest);
    return rebuild(client);
  }
  auto events = parse_events(reply->body);
  if (!events) return make_error("events: " + events.error());
  auto applied = model_.apply(*events);
  if (!applied) return make_error("applying events: " + applied.error());
  if (listener_.applied && !events->empty()) listener_.applied(*events, *applied);
  if (listener_.position) {
    uint64_t now_at = events->empty() ? from : std::max(from, events->back().seq);
    listener_.position(last, now_at < last && !events->empty() ? events->back().time_ms : 0);
  }
  return {};
}

Result<std::map<JobId, std::vector<TestCase>>> FeedFollower::finished_cases(
    LineClient& client, const std::vector<JobInfo>& jobs) {
  std::map<JobId, std::vector<TestCase>> cases;
  for (const auto& job : jobs) {
    if (job.state != "finished" || job.attempt == 0) continue;
    auto reply = call_ok(client, TestsRequest{job.id, job.attempt}, 0);
    if (!reply) return Error{reply.error()};
    auto parsed = parse_cases(reply->body);
    if (!parsed)
      return make_error("tests of job " + std::to_string(job.id) + ": " + parsed.error());
    cases[job.id] = std::move(*parsed);
  }
  return cases;
}

Result<void> FeedFollower::rebuild(LineClient& client) {
  JobId after = 0;
  std::optional<uint64_t> follow_from;
  for (;;) {
    if (stopping()) return make_error("stopping");
    auto reply = call_ok(client, SnapshotRequest{after, options_.snapshot_page}, 1);
    if (!reply) return Error{reply.error()};
    uint64_t seq = 0;
    if (!parse_u64(reply->args[0], &seq)) return make_error("snapshot: a malformed reply");
    // Events after the first page's seq are followed afterwards; a job they overlap
    // with a later page is applied only if newer.
    if (!follow_from) follow_from = seq;
    auto jobs = parse_jobs(reply->body);
    if (!jobs) return make_error("snapshot: " + jobs.error());
    auto cases = finished_cases(client, *jobs);
    if (!cases) return Error{cases.error()};
    bool last = jobs->size() < options_.snapshot_page;
    auto r = model_.apply_snapshot(*jobs, *cases, last ? follow_from : std::nullopt);
    if (!r) return make_error("applying a snapshot: " + r.error());
    if (last) break;
    after = jobs->back().id;
  }
  spdlog::info("rebuilt the read model from a snapshot; following the feed from {}", *follow_from);
  auto runners = call_ok(client, RunnersRequest{}, 0);
  if (!runners) return Error{runners.error()};
  auto rows = parse_runners_reply(*runners);
  if (!rows) return make_error("runners: " + rows.error());
  if (auto r = model_.replace_runners(rows->runners); !r)
    return make_error("runners: " + r.error());
  if (listener_.rebuilt) listener_.rebuilt(*follow_from);
  MutexLock lock(mutex_);
  ++rebuilds_;  // counted once the listener knows, so that a test sees both
  return {};
}

}  // namespace ci::reporter
