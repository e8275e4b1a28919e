// The dispatcher daemon, wired from parts with one job each:
//   RequestHandler  the verbs: requests -> scheduler calls -> typed replies
//   GroupCommitter  the store thread: changes written in batches, answers after
//   OfferSender     the redistribution threads: offers -> runtest -> scheduler
//   Heartbeat       the heartbeat thread: pings -> scheduler
//   RunnerLink      the connections to the runners (one for pings, one for offers)
//   FeedHub         the readers of the event feed, answered from the store
//   LogStore        the live logs of the jobs' attempts, on disk
//   CancelSender    tells runners to stop cancelled jobs
// All of them reach the Scheduler only under the one mutex of GuardedScheduler. The
// store and the clock are given to it, so tests run it on a store that fails on
// demand and on a fake clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "ci/clock.h"
#include "ci/net.h"
#include "dispatcher/cancel_sender.h"
#include "dispatcher/feed_hub.h"
#include "dispatcher/group_committer.h"
#include "dispatcher/guarded_scheduler.h"
#include "dispatcher/heartbeat.h"
#include "dispatcher/log_store.h"
#include "dispatcher/offer_sender.h"
#include "dispatcher/request_handler.h"
#include "dispatcher/result_writer.h"
#include "dispatcher/runner_link.h"
#include "dispatcher/sqlite_store.h"

namespace ci {

struct DispatcherOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8888;
  std::string results_dir = "test_results";
  std::string state_dir = ".ci-state";  // holds state.db; ":memory:" keeps nothing
  SyncMode sync = SyncMode::Normal;
  std::chrono::milliseconds heartbeat_interval{2000};
  int heartbeat_misses = 3;
  uint32_t max_attempts = 3;
  size_t max_body = 16u << 20;
  std::chrono::milliseconds idle_timeout{10000};
  size_t max_connections = 256;
  std::chrono::milliseconds auth_timeout{5000};  // with a token: to authenticate in
  size_t max_unauthenticated_per_address = 64;   // with a token: authenticating at once
  size_t body_budget = 64u << 20;  // bytes of bodies received at once, all connections
  std::string token;         // non-empty: peers authenticate, and it answers runners' greetings
  size_t offer_threads = 4;  // runtests in flight at once
  uint64_t event_retention = kDefaultEventRetention;  // feed events kept
  // The live logs: "" for <state-dir>/logs (with a state in memory, <results-dir>/.logs).
  std::string log_dir;
  uint64_t log_head_bytes = 2u << 20;  // a log keeps its first and last bytes up to these
  uint64_t log_tail_bytes = 2u << 20;
  bool cancel_superseded = false;  // a newer commit on a branch cancels its queued jobs
};

class Dispatcher {
 public:
  // Opens its store in options.state_dir (SQLite) at start().
  explicit Dispatcher(DispatcherOptions options, Clock& clock = Clock::real());
  // On a store of the caller's: options.state_dir is not used.
  Dispatcher(DispatcherOptions options, std::unique_ptr<Store> store, Clock& clock = Clock::real());
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  Result<void> start();
  // No new requests first; then the threads, the store thread last so that it writes
  // what they changed.
  void stop();
  uint16_t port() const { return server_ ? server_->port() : 0; }

 private:
  Result<void> open_store();
  Result<void> open_logs();
  Result<void> restore();
  ServerOptions server_options() const;

  DispatcherOptions options_;
  Clock& clock_;
  ResultWriter writer_;
  GuardedScheduler state_;
  std::unique_ptr<Store> store_;
  std::string store_name_ = "given to the dispatcher";  // for messages: its file
  RunnerLink ping_link_;
  RunnerLink offer_link_;
  RunnerLink cancel_link_;
  std::unique_ptr<LogStore> logs_;
  std::unique_ptr<FeedHub> feed_;
  std::unique_ptr<CancelSender> cancels_;
  std::unique_ptr<GroupCommitter> committer_;
  std::unique_ptr<OfferSender> offers_;
  std::unique_ptr<Heartbeat> heartbeat_;
  std::unique_ptr<RequestHandler> handler_;
  std::unique_ptr<LineServer> server_;
};

}  // namespace ci
