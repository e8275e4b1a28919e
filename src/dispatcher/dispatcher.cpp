#include "dispatcher/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "ci/auth.h"
#include "ci/files.h"

namespace ci {

namespace {

RunnerLink::Options link_options(const DispatcherOptions& o, std::chrono::milliseconds connect,
                                 std::chrono::milliseconds io) {
  RunnerLink::Options lo;
  lo.token = o.token;
  lo.connect_timeout = connect;
  lo.io_timeout = io;
  return lo;
}

// A ping waits no longer than a round; a runtest longer, as the runner answers it
// once it has taken the job on.
std::chrono::milliseconds ping_timeout(const DispatcherOptions& o) {
  return std::min(o.heartbeat_interval, std::chrono::milliseconds(2000));
}

}  // namespace

Dispatcher::Dispatcher(DispatcherOptions options, Clock& clock)
    : Dispatcher(std::move(options), nullptr, clock) {}

Dispatcher::Dispatcher(DispatcherOptions options, std::unique_ptr<Store> store, Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      // Result files are as durable as the store: --sync full flushes both.
      writer_(options_.results_dir, options_.sync == SyncMode::Full),
      state_(Scheduler::Options{options_.heartbeat_misses, options_.max_attempts,
                                options_.cancel_superseded}),
      store_(std::move(store)),
      ping_link_(link_options(options_, ping_timeout(options_), ping_timeout(options_))),
      offer_link_(
          link_options(options_, std::chrono::milliseconds(2000), std::chrono::milliseconds(5000))),
      cancel_link_(link_options(options_, std::chrono::milliseconds(2000),
                                std::chrono::milliseconds(5000))) {}

Dispatcher::~Dispatcher() { stop(); }

Result<void> Dispatcher::open_store() {
  if (store_) return {};
  std::string db_path = ":memory:";
  if (options_.state_dir != ":memory:") {
    if (auto r = make_dirs(options_.state_dir); !r) return r;
    db_path = options_.state_dir + "/state.db";
  }
  auto store = open_sqlite_store(db_path, options_.sync, options_.event_retention);
  if (!store) return Error{store.error()};
  store_ = std::move(*store);
  store_name_ = db_path;
  return {};
}

Result<void> Dispatcher::open_logs() {
  LogStore::Options lo;
  lo.dir = options_.log_dir;
  if (lo.dir.empty())
    lo.dir = options_.state_dir == ":memory:" ? options_.results_dir + "/.logs"
                                              : options_.state_dir + "/logs";
  lo.head_bytes = options_.log_head_bytes;
  lo.tail_bytes = options_.log_tail_bytes;
  auto logs = LogStore::open(lo);
  if (!logs) return Error{"logs in " + lo.dir + ": " + logs.error()};
  logs_ = std::move(*logs);
  return {};
}

Result<void> Dispatcher::restore() {
  auto stored = store_->load();
  if (!stored) return Error{"state database " + store_name_ + ": " + stored.error()};
  size_t jobs = stored->jobs.size(), runners = stored->runners.size();
  uint64_t last_seq = stored->last_seq;
  MutexLock lock(state_.mutex);
  Scheduler& scheduler = state_.scheduler;
  // The feed's times are wall-clock; the scheduler's are this clock's.
  scheduler.set_wall_origin(clock_.now(), std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  scheduler.restore_feed_seq(last_seq);
  feed_->start(last_seq);
  scheduler.restore(std::move(stored->jobs), stored->runners, clock_.now(), stored->repos);
  if (auto r = committer_->save_all(); !r) return r;
  if (jobs || runners)
    spdlog::info("state {}: {} jobs ({} queued, {} running), {} runners to ping", store_name_, jobs,
                 scheduler.queued(), scheduler.count_jobs(JobState::Running), runners);
  return {};
}

ServerOptions Dispatcher::server_options() const {
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
  return so;
}

Result<void> Dispatcher::start() {
  if (auto r = writer_.prepare(); !r) return r;
  if (auto r = open_store(); !r) return r;
  if (auto r = open_logs(); !r) return r;
  feed_ = std::make_unique<FeedHub>(
      *store_, clock_,
      static_cast<size_t>(std::min<uint64_t>(options_.event_retention, FeedHub::kMaxRecentEvents)));
  cancels_ = std::make_unique<CancelSender>(cancel_link_);
  committer_ = std::make_unique<GroupCommitter>(state_, *store_, writer_, clock_);
  committer_->on_feed_written(
      [this](std::vector<FeedEvent> events) { feed_->written(std::move(events)); });
  committer_->on_attempts_ended([this](const GroupCommitter::Attempts& ended) {
    for (const auto& [job, attempt] : ended) logs_->finish(job, attempt);
  });
  offers_ = std::make_unique<OfferSender>(state_, *committer_, offer_link_, clock_);
  heartbeat_ = std::make_unique<Heartbeat>(state_, *committer_, *offers_, ping_link_, clock_,
                                           options_.heartbeat_interval);
  handler_ = std::make_unique<RequestHandler>(
      state_, *committer_, *offers_, writer_,
      RequestHandler::Feed{*feed_, *logs_, *store_, *cancels_}, clock_);
  if (auto r = restore(); !r) return r;

  server_ = std::make_unique<LineServer>(
      server_options(), request_has_body,
      [this](const Frame& f, const std::string& peer, Responder respond) {
        handler_->handle(f, peer, std::move(respond));
      });
  committer_->start();
  if (auto r = server_->start(); !r) return r;
  {
    MutexLock lock(state_.mutex);
    offers_->plan();
  }
  heartbeat_->start();
  offers_->start(options_.offer_threads);
  cancels_->start();
  return {};
}

void Dispatcher::stop() {
  if (server_) server_->stop();
  if (heartbeat_) heartbeat_->stop();
  if (offers_) offers_->stop();
  if (cancels_) cancels_->stop();
  if (committer_) committer_->finish();
  if (feed_) feed_->stop();
}

}  // namespace ci
