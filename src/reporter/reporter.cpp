#include "reporter/reporter.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <thread>

#include "ci/auth.h"
#include "ci/mutex.h"
#include "ci/net.h"
#include "reporter/api.h"
#include "reporter/json.h"
#include "reporter/metrics.h"
#include "reporter/queries.h"
#include "reporter/read_model.h"
#include "reporter/sse_hub.h"

namespace ci::reporter {

namespace {

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool parse_u64(const std::string& text, uint64_t* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// A `logread` on a connection of its own (HTTP threads share no client).
Result<LogChunk> read_log(const ReporterOptions& options, JobId job, uint32_t attempt,
                          uint64_t offset, uint64_t max) {
  ClientOptions client_options;
  client_options.token = options.feed.token;
  if (!options.feed.token.empty()) client_options.service = kDispatcherService;
  client_options.connect_timeout = options.log_timeout;
  client_options.io_timeout = options.log_timeout;
  LineClient client(options.feed.host, options.feed.port, client_options);
  auto reply = client.call(LogReadRequest{job, attempt, offset, max});
  if (!reply) return Error{reply.error()};
  if (reply->kind != Reply::Kind::Ok) return make_error("dispatcher: " + reply->reason());
  LogChunk chunk;
  uint64_t done = 0;
  if (reply->args.size() != 3 || !parse_u64(reply->args[0], &chunk.start) ||
      !parse_u64(reply->args[1], &chunk.total) || !parse_u64(reply->args[2], &done))
    return make_error("dispatcher: a malformed logread reply");
  chunk.done = done != 0;
  chunk.bytes = std::move(reply->body);
  return chunk;
}

}  // namespace

struct Reporter::Impl {
  ReporterOptions options;
  std::unique_ptr<ReadModel> model;
  std::unique_ptr<QueryPool> queries;
  std::unique_ptr<SseHub> hub;
  Metrics metrics;
  std::unique_ptr<Api> api;
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<Notifier> notifier;
  std::unique_ptr<FeedFollower> follower;
  Mutex mutex;
  CondVar wake;
  bool stopping GUARDED_BY(mutex) = false;
  std::thread keepalive;

  void applied(const std::vector<FeedEvent>& events, const ApplyResult& result) {
    for (size_t i : result.applied) {
      const FeedEvent& e = events[i];
      hub->publish(e.seq, to_string(e.kind), json_text(event_json(e)));
      if (e.kind == EventKind::JobStarted && e.job.queued_ms && e.job.started_ms)
        metrics.observe_start(e.job.started_ms - e.job.queued_ms);
      if (e.kind == EventKind::JobFinished) metrics.observe_duration(e.job.duration_ms);
    }
    if (result.notifications) notifier->wake();
  }

  std::string scrape() {
    auto lease = queries->lease();
    if (!lease) return "# " + lease.error() + "\n";
    auto counts = (**lease)->counts();
    if (!counts) return "# " + counts.error() + "\n";
    return metrics.scrape(*counts, unix_ms());
  }

  void keep_alive() EXCLUDES(mutex) {
    Clock& clock = *options.feed.clock;
    MutexLock lock(mutex);
    while (!stopping) {
      TimePoint deadline = clock.now() + options.keepalive;
      while (!stopping && clock.now() < deadline) clock.wait_until(wake, lock, deadline);
      if (stopping) break;
      run_unlocked(mutex, [&] { hub->keepalive(); });
    }
  }
};

Reporter::Reporter(ReporterOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

Reporter::~Reporter() { stop(); }

Result<void> Reporter::start() {
  Impl& m = *impl_;
  const ReporterOptions& o = m.options;
  auto model = ReadModel::open(o.db_path, notify_targets(o.notify));
  if (!model) return make_error(o.db_path + ": " + model.error());
  m.model = std::move(*model);
  auto last = m.model->last_seq();
  if (!last) return make_error(o.db_path + ": " + last.error());
  m.queries = std::make_unique<QueryPool>(o.db_path);
  m.hub = std::make_unique<SseHub>(*last);
  ApiOptions api_options;
  api_options.token = o.http_token;
  m.api = std::make_unique<Api>(
      api_options, *m.queries,
      [&o](JobId job, uint32_t attempt, uint64_t offset, uint64_t max) {
        return read_log(o, job, attempt, offset, max);
      },
      [&m] { return m.scrape(); });
  m.http = std::make_unique<HttpServer>(
      o.http, [&m](const HttpRequest& request) { return m.api->handle(request); }, *m.hub,
      api_options.stream_path);
  if (auto r = m.http->start(); !r) return r;
  m.notifier = std::make_unique<Notifier>(o.notify, o.db_path);
  if (auto r = m.notifier->start(); !r) return r;
  FollowerListener listener;
  listener.applied = [&m](const auto& events, const auto& result) { m.applied(events, result); };
  listener.rebuilt = [&m](uint64_t seq) { m.hub->reset(seq); };
  listener.position = [&m](uint64_t feed_last, int64_t since_ms) {
    m.metrics.feed_position(feed_last, since_ms);
  };
  m.follower = std::make_unique<FeedFollower>(o.feed, *m.model, std::move(listener));
  m.follower->start();
  m.keepalive = std::thread([&m] { m.keep_alive(); });
  return {};
}

uint16_t Reporter::http_port() const { return impl_->http ? impl_->http->port() : 0; }

void Reporter::stop() {
  Impl& m = *impl_;
  {
    MutexLock lock(m.mutex);
    m.stopping = true;
  }
  m.wake.notify_all();
  if (m.keepalive.joinable()) m.keepalive.join();
  if (m.http) m.http->stop();
  if (m.follower) m.follower->stop();
  if (m.notifier) m.notifier->stop();
}

}  // namespace ci::reporter
