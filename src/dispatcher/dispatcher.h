// The dispatcher daemon: serves the protocol, and runs the heartbeat thread (pings
// runners, drops the dead) and the redistribution thread (hands queued jobs to free
// runners). Every thread reaches the Scheduler only under mutex_.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "ci/net.h"
#include "result_writer.h"
#include "scheduler.h"
#include "store.h"

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
  std::string token;  // non-empty: peers authenticate, and it answers runners' greetings
};

class Dispatcher {
 public:
  explicit Dispatcher(DispatcherOptions options);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  Result<void> start();
  void stop();
  uint16_t port() const { return server_ ? server_->port() : 0; }

 private:
  Response handle(const Frame& frame, const std::string& peer);
  Reply on_register(const RegisterRequest& r);
  Reply on_dispatch(const DispatchRequest& r);
  Reply on_results(const ResultsRequest& r);
  Reply on_status();
  Reply on_runners();
  Reply on_jobs(const JobsRequest& r);
  Reply on_retry(const RetryRequest& r);
  Reply on_abandon(const AbandonRequest& r);
  Reply on_unregister(const UnregisterRequest& r);

  void heartbeat_loop();
  void redistribution_loop();
  // Makes the scheduler's changes durable (the store, then the result files of jobs
  // it gave up on) and logs them. Called with `lock` held; releases it while writing
  // files. An error means the change is not durable: the peer must not hear OK.
  Result<void> settle(std::unique_lock<std::mutex>& lock);
  // settle(), then unlocks and answers `reply`, or ERR when the change is not durable.
  Reply durable(std::unique_lock<std::mutex>& lock, Reply reply);

  DispatcherOptions options_;
  ResultWriter writer_;
  std::mutex mutex_;
  std::condition_variable changed_;  // a job or a runner may have become available
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  Scheduler scheduler_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LineServer> server_;
  std::thread heartbeat_;
  std::thread redistributor_;
};

}  // namespace ci
