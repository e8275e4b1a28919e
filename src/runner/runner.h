// The runner daemon: a line-protocol server answering the dispatcher's ping and
// runtest, a worker thread that runs one job at a time and reports its results, and a
// liaison thread that keeps the runner registered with the dispatcher.
//
// Threads: the server's I/O thread, the worker and the liaison share the job state and
// the registration schedule through one mutex. start() and stop() are called from one
// thread (main's, or a test's).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "ci/net.h"
#include "ci/process.h"
#include "ci/protocol.h"
#include "ci/validate.h"
#include "registration_schedule.h"
#include "test_job.h"

namespace ci::runner {

struct RunnerOptions {
  std::string host = "127.0.0.1";  // bound to and advertised to the dispatcher
  // nullopt: the first free port in 8900-9000; 0: an ephemeral port.
  std::optional<uint16_t> port;
  HostPort dispatcher{"localhost", 8888};
  TestJobOptions job;  // job.repo is the runner's clone
  // With no message from the dispatcher for this long, register again.
  std::chrono::milliseconds dispatcher_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds retry_initial{100};  // backoff towards the dispatcher
  std::chrono::milliseconds retry_max{5000};
};

class Runner {
 public:
  explicit Runner(RunnerOptions options);
  ~Runner();  // stops
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Checks the repository, binds, logs where it listens and starts the threads. An
  // error (no repository, no remote origin, no port) leaves nothing running.
  Result<void> start();
  // Cancels a running test, stops the server and joins the threads. A result not yet
  // delivered is dropped: the dispatcher gives the job to another runner. Idempotent.
  void stop();
  uint16_t port() const { return port_; }
  std::string address() const;  // host:port, as registered

 private:
  Result<void> listen();
  Response handle(const Frame& request, const std::string& peer);
  Reply handle_runtest(const RuntestRequest& request);
  Reply handle_ping();
  void work();
  // Retries until the dispatcher answers OK or ERR, or the runner stops.
  void deliver(LineClient& dispatcher, const RuntestRequest& job, const ResultsRequest& results);
  void keep_registered();

  const RunnerOptions options_;
  uint16_t port_ = 0;
  std::unique_ptr<LineServer> server_;
  CancelToken cancel_;

  std::mutex mu_;
  std::condition_variable changed_;  // a job arrived, or stopping
  bool stopping_ = false;
  // From the OK to a runtest until its result is delivered or dropped.
  std::optional<RuntestRequest> job_;
  bool job_started_ = false;  // the worker has taken job_
  RegistrationSchedule registration_;

  std::thread worker_;
  std::thread liaison_;
};

}  // namespace ci::runner
