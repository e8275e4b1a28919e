// The runner daemon: a line-protocol server answering the dispatcher's ping and
// runtest, a worker thread that runs one job at a time and spools its results, and a
// liaison thread that keeps the runner registered and delivers the spooled results.
//
// A finished job's results go to the spool on disk first, then to the dispatcher; they
// leave the spool only once the dispatcher has answered for them. Until then the runner
// reports itself busy with that job (ping, runtest), so that a dispatcher that comes
// back does not hand the job to another runner, and a runner that restarts delivers
// them after registering.
//
// Threads: the server's I/O thread, the worker and the liaison share the job state, the
// pending results and the registration schedule through one mutex. start(), drain(),
// wait_drained() and stop() are called from one thread (main's, or a test's).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "runner/backoff.h"
#include "ci/net.h"
#include "ci/process.h"
#include "ci/protocol.h"
#include "ci/validate.h"
#include "runner/registration_schedule.h"
#include "runner/result_spool.h"
#include "runner/running_job_record.h"
#include "runner/job_run.h"

namespace ci::runner {

struct RunnerOptions {
  std::string host = "127.0.0.1";  // bound to and advertised to the dispatcher
  // nullopt: the first free port in 8900-9000; 0: an ephemeral port.
  std::optional<uint16_t> port;
  HostPort dispatcher{"localhost", 8888};
  JobRunOptions job;  // job.repo is the runner's clone; work_root and user are set by start()
  // The runner's own folder, out of every test's reach: the spool, the note of the
  // running test, the jobs' checkouts (work/) and a lock that keeps a second runner out.
  // "": <job.repo>.ci-runner, beside the clone.
  std::string state_dir;
  // Results not yet delivered; "": <state_dir>/spool.
  std::string spool_dir;
  // When the runner runs as root, tests run as this user (never as root).
  std::string test_user = "nobody";
  // The token's file, hidden from tests (the token itself never reaches them).
  std::string token_file;
  // Limits of each job's cgroup; with any, the runner refuses to start where it cannot
  // make cgroups with them (cgroup.h).
  CgroupLimits cgroup_limits;
  // A cgroup per job even without limits (it then only ends what a test left running,
  // which matters with the sandbox off); the runner refuses to start where it cannot.
  bool job_cgroup = false;
  // With no message from the dispatcher for this long, register again.
  std::chrono::milliseconds dispatcher_timeout{std::chrono::seconds(10)};
  std::chrono::milliseconds retry_initial{100};  // backoff towards the dispatcher
  std::chrono::milliseconds retry_max{5000};
  // Non-empty: every peer proves it (ci/auth.h), and the runner to the dispatcher.
  std::string token;
  // How long stop() waits for the dispatcher on each of its last messages.
  std::chrono::milliseconds goodbye_timeout{2000};
};

class Runner {
 public:
  explicit Runner(RunnerOptions options);
  ~Runner();  // stops
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Checks that ci-test-guard is beside the executable (ci/process.h) and checks the
  // repository, opens the spool (killing what is left of a test that an earlier run was
  // killed with, and taking up the results it left), binds, logs where it listens and
  // starts the threads. An error (no guard, no repository, no remote origin, no spool,
  // no port) leaves nothing running.
  Result<void> start();
  // Stops taking jobs (runtest is answered BUSY) and lets a running test finish and its
  // results be delivered. Returns at once; wait_drained() says when nothing is left.
  void drain();
  // True once draining and no job is running and no result is waiting.
  bool wait_drained(std::chrono::milliseconds timeout);
  // Kills a running test, then, each at most goodbye_timeout and without retrying:
  // delivers the spooled results, gives the killed job back to the dispatcher
  // (abandon) and leaves it (unregister). Results not delivered stay in the spool for
  // the next start. Stops the server and joins the threads. Idempotent.
  void stop();
  uint16_t port() const { return port_; }
  std::string address() const;  // host:port, as registered
  const std::string& spool_dir() const { return spool_.dir(); }
  const std::string& state_dir() const { return state_dir_; }
  // Where the jobs' checkouts are made; set by start().
  const std::string& work_root() const { return job_options_.work_root; }

 private:
  Result<void> open_state();
  Result<void> prepare_work_root();
  Result<void> prepare_sandbox();
  Result<void> prepare_cgroups();
  Result<void> open_spool();
  std::string old_spool_dir() const;
  void take_up_old_spool();
  void remove_own_work_root();
  Result<void> listen();
  Response handle(const Frame& request, const std::string& peer);
  Reply handle_runtest(const RuntestRequest& request);
  Reply handle_ping();
  // A message from the dispatcher: it is there, so waiting results go at once.
  void heard_from_dispatcher();
  bool drained() const;
  void work();
  // Runs the job and spools its results; nullptr when stop() cancelled it.
  std::shared_ptr<const SpooledResult> run_job(const RuntestRequest& job);
  void keep_in_touch();
  void register_once(LineClient& dispatcher, std::unique_lock<std::mutex>& lock);
  void deliver_oldest(LineClient& dispatcher, std::unique_lock<std::mutex>& lock);
  // stop()'s last messages to the dispatcher, once the threads are joined.
  void say_goodbye();

  const RunnerOptions options_;
  const std::string state_dir_;
  JobRunOptions job_options_;  // options_.job, completed by start()
  int state_lock_ = -1;         // held while the runner runs
  const ResultSpool spool_;
  const RunningJobRecord running_job_;
  Clone clone_;  // options_.job.repo, the worker's
  uint16_t port_ = 0;
  std::unique_ptr<LineServer> server_;
  CancelToken cancel_;
  bool started_ = false;  // start() succeeded; touched by the calling thread only
  bool stopped_ = false;

  std::mutex mu_;
  std::condition_variable changed_;  // a job arrived or ended, a result is due, stopping
  bool stopping_ = false;
  bool draining_ = false;
  // From the OK to a runtest until its results are spooled. A job whose test was
  // killed by stop() (or never started) stays here for stop() to give back.
  std::optional<RuntestRequest> job_;
  bool job_started_ = false;  // the worker has taken job_
  // Spooled results the dispatcher has not answered for, oldest first. Only the
  // liaison (and stop(), after it) removes them.
  std::deque<std::shared_ptr<const SpooledResult>> pending_;
  bool delivering_front_ = false;  // pending_.front() has been sent; its reply is awaited
  std::chrono::steady_clock::time_point deliver_at_;
  Backoff delivery_backoff_;
  bool delivery_failing_ = false;
  RegistrationSchedule registration_;
  bool ever_registered_ = false;

  std::thread worker_;
  std::thread liaison_;
};

}  // namespace ci::runner
