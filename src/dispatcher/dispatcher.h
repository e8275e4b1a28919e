// The dispatcher daemon: serves the protocol, and runs the heartbeat thread (pings
// runners, drops the dead) and the redistribution thread (hands queued jobs to free
// runners). Every thread reaches the Scheduler only under mutex_.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ci/net.h"
#include "dispatcher/result_writer.h"
#include "dispatcher/scheduler.h"
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
};

class Dispatcher {
 public:
  // `jobs` lists at most this many jobs, the newest: a larger limit is clamped to it.
  static constexpr uint64_t kMaxJobsListed = 10000;

  explicit Dispatcher(DispatcherOptions options);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  Result<void> start();
  void stop();
  uint16_t port() const { return server_ ? server_->port() : 0; }

 private:
  using Answer = std::function<void(const Reply&)>;
  void handle(const Frame& frame, const std::string& peer, Responder respond);
  void on_register(const RegisterRequest& r, Answer answer);
  void on_dispatch(const DispatchRequest& r, Answer answer);
  void on_results(const ResultsRequest& r, Answer answer);
  Reply on_status();
  Reply on_runners();
  Reply on_jobs(const JobsRequest& r);
  void on_retry(const RetryRequest& r, Answer answer);
  void on_abandon(const AbandonRequest& r, Answer answer);
  void on_unregister(const UnregisterRequest& r, Answer answer);

  void heartbeat_loop();
  void redistribution_loop();
  void store_loop();

  // Group commit. Every change to the scheduler is followed by a ticket; the store
  // thread writes all the changes made so far in one transaction and then calls
  // back every ticket up to that point. So a peer hears OK only once its change is
  // in the store, and changes that arrive together share one write.
  using Saved = std::function<void(const Result<void>&)>;
  // Called with mutex_ held: `saved` runs (under mutex_) once the changes made so far
  // are durable, or failed to become so.
  void after_save(Saved saved);
  // Takes every offer the scheduler can make now (with mutex_ held). Each goes out once
  // the write that holds it is done: usually the one of the change that made it
  // possible, so a dispatch or a result and the next offer share one transaction.
  void plan_offers();
  // A change no one waits for (with mutex_ held): written with the next batch, and
  // at the latest kLazyWriteDelay later.
  void note_change();
  static constexpr std::chrono::milliseconds kLazyWriteDelay{20};
  // after_save() for a peer: unlocks and answers `reply` once the change is durable,
  // ERR if it cannot be made so.
  void answer_when_saved(std::unique_lock<std::mutex>& lock, Reply reply, Answer answer);
  // Writes the scheduler's changes to the store, logs its events and records the
  // jobs it gave up on. Called with `lock` held; releases it while writing. `more`:
  // recording gave-up jobs made new changes.
  Result<void> save_changes(std::unique_lock<std::mutex>& lock, bool* more);

  struct Waiter {
    uint64_t ticket;
    Saved saved;
  };

  // Clients to runners, shared by the threads that talk to them: one connection per
  // runner in the usual case.
  std::unique_ptr<LineClient> take_client(const std::string& runner,
                                          std::chrono::milliseconds timeout);
  void give_client(const std::string& runner, std::unique_ptr<LineClient> client);

  DispatcherOptions options_;
  ResultWriter writer_;
  std::mutex mutex_;
  std::condition_variable offers_cv_;  // an offer may be sent
  std::condition_variable stop_cv_;
  std::condition_variable store_cv_;  // changes wait for the store thread
  bool stopping_ = false;
  bool workers_stopped_ = false;  // no thread but the store thread changes anything
  uint64_t change_seq_ = 0;       // tickets handed out
  uint64_t saved_seq_ = 0;        // tickets written (or failed)
  std::deque<Waiter> waiters_;
  struct PlannedOffer {
    uint64_t ticket;
    Offer offer;
  };
  std::deque<PlannedOffer> planned_;  // waiting for their write
  std::deque<Offer> sendable_;        // written: for the offer threads to send
  bool lazy_pending_ = false;         // changes no one waits for, not written yet
  TimePoint lazy_due_{};
  std::mutex clients_mutex_;
  std::multimap<std::string, std::unique_ptr<LineClient>> clients_;
  Scheduler scheduler_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LineServer> server_;
  std::thread store_thread_;
  std::thread heartbeat_;
  std::vector<std::thread> redistributors_;
};

}  // namespace ci
