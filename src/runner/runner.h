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
//
// Time: every "now" and every timed wait of these threads (registration retries, the
// delivery backoff, the dispatcher's silence, wait_drained) is on the options' Clock,
// so that tests move it by hand. The test's own timeout and the sockets' timeouts stay
// on real time: they guard a real process and real connections.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ci/clock.h"
#include "ci/fd.h"
#include "ci/mutex.h"
#include "ci/net.h"
#include "ci/process.h"
#include "ci/protocol.h"
#include "ci/thread_annotations.h"
#include "ci/validate.h"
#include "runner/backoff.h"
#include "runner/job_run.h"
#include "runner/log_stream.h"
#include "runner/registration_schedule.h"
#include "runner/repo_store.h"
#include "runner/result_spool.h"
#include "runner/running_job_record.h"

namespace ci::runner {

struct RunnerOptions {
  std::string host = "127.0.0.1";  // bound to and advertised to the dispatcher
  // nullopt: the first free port in 8900-9000; 0: an ephemeral port.
  std::optional<uint16_t> port;
  HostPort dispatcher{"localhost", 8888};
  // job.repo is the runner's clone ("": none, with a workdir); work_root and user are
  // set by start().
  JobRunOptions job;
  // "": none. The folder where the runner provisions named repositories itself
  // (repo_store.h); without a clone its state folder is <workdir>/state.
  std::string workdir;
  // Jobs run at once, each in a checkout of its own (1..kMaxSlots).
  uint32_t slots = 1;
  // Advertised to the dispatcher, which hands the runner only jobs whose required
  // labels it has all of. Sorted, each once.
  std::vector<std::string> labels;
  // The runner's own folder, out of every test's reach: the spool, the note of the
  // running test, the jobs' checkouts (work/) and a lock that keeps a second runner out.
  // "": <job.repo>.ci-runner, beside the clone; without a clone, <workdir>/state.
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
  // The runner's time (see above); tests pass a FakeClock. Outlives the runner.
  Clock* clock = &Clock::real();
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
  Result<void> start() EXCLUDES(mu_);
  // Stops taking jobs (runtest is answered BUSY) and lets a running test finish and its
  // results be delivered. Returns at once; wait_drained() says when nothing is left.
  void drain() EXCLUDES(mu_);
  // True once draining and no job is running and no result is waiting.
  // On the runner's Clock.
  bool wait_drained(std::chrono::milliseconds timeout) EXCLUDES(mu_);
  // Kills a running test, then, each at most goodbye_timeout and without retrying:
  // delivers the spooled results, gives the killed job back to the dispatcher
  // (abandon) and leaves it (unregister). Results not delivered stay in the spool for
  // the next start. Stops the server and joins the threads. Idempotent.
  void stop() EXCLUDES(mu_);
  uint16_t port() const { return port_; }
  std::string address() const;  // host:port, as registered
  const std::string& spool_dir() const { return spool_.dir(); }
  const std::string& state_dir() const { return state_dir_; }
  // Where the jobs' checkouts are made; set by start().
  const std::string& work_root() const { return job_options_.work_root; }
  // The repositories provisioned under the workdir; nullptr without one.
  const RepoStores* stores() const { return stores_.get(); }
  // What the runner serves: the default repository (a clone), named ones (a workdir)
  // or both.
  RepoScope scope() const;

 private:
  Result<void> open_state();
  Result<void> prepare_work_root();
  Result<void> prepare_sandbox();
  Result<void> prepare_cgroups();
  Result<void> open_spool() EXCLUDES(mu_);
  std::string old_spool_dir() const;
  void take_up_old_spool();
  void remove_own_work_root();
  Result<void> listen();
  LogSenderOptions log_sender_options() const;
  Response handle(const Frame& request, const std::string& peer) EXCLUDES(mu_);
  Reply handle_runtest(const RuntestRequest& request) EXCLUDES(mu_);
  Reply handle_ping() EXCLUDES(mu_);
  // The dispatcher's cancel of the job this runner runs: its test is killed and its
  // results reported as cancelled.
  Reply handle_cancel(const CancelRequest& request) EXCLUDES(mu_);
  // A message from the dispatcher: it is there, so waiting results go at once.
  void heard_from_dispatcher() REQUIRES(mu_);
  bool drained() const REQUIRES(mu_);
  // The worker of slot `slot`.
  void work(size_t slot) EXCLUDES(mu_);
  // Runs the job in slot `slot` and spools its results; nullptr when stop() cancelled
  // it.
  std::shared_ptr<const SpooledResult> run_job(size_t slot, const RuntestRequest& job,
                                               const CancelToken* cancel) EXCLUDES(mu_);
  // Where the job's files come from: the clone, or the repository's store.
  Exporter exporter_for(const RuntestRequest& job, const CancelToken* cancel);
  size_t running() const REQUIRES(mu_);  // slots holding a job
  // The liaison (runner_liaison.cpp). register_once and deliver_oldest release mu_
  // while they wait for the dispatcher and hold it again when they return.
  void keep_in_touch() EXCLUDES(mu_);
  void register_once(LineClient& dispatcher) REQUIRES(mu_);
  void deliver_oldest(LineClient& dispatcher) REQUIRES(mu_);
  // stop()'s last messages to the dispatcher, once the threads are joined.
  void say_goodbye() EXCLUDES(mu_);

  const RunnerOptions options_;
  Clock& clock_;  // *options_.clock
  const std::string state_dir_;
  JobRunOptions job_options_;  // options_.job, completed by start()
  UniqueFd state_lock_;        // held while the runner runs
  const ResultSpool spool_;
  // A slot's note of its running test: <state>/running-test for the first slot (where
  // a one-slot runner always kept it), running-test.<i> for slot i > 0.
  std::vector<std::unique_ptr<const RunningJobRecord>> running_jobs_;
  // options_.job.repo, when given; used by one slot at a time (clone_mu_).
  Mutex clone_mu_;
  std::optional<Clone> clone_ GUARDED_BY(clone_mu_);
  std::unique_ptr<RepoStores> stores_;  // with a workdir
  uint16_t port_ = 0;
  std::unique_ptr<LineServer> server_;
  // Each slot's running test's live log to the dispatcher; made by start().
  std::vector<std::unique_ptr<LogSender>> logs_;
  bool started_ = false;  // start() succeeded; touched by the calling thread only
  bool stopped_ = false;

  Mutex mu_;
  CondVar changed_;  // a job arrived or ended, a result is due, stopping
  bool stopping_ GUARDED_BY(mu_) = false;
  bool draining_ GUARDED_BY(mu_) = false;
  struct Slot {
    // From the OK to a runtest until its results are spooled. A job whose test was
    // killed by stop() (or never started) stays here for stop() to give back.
    std::optional<RuntestRequest> job;
    bool started = false;  // the slot's worker has taken job
    // Stops job's test: cancelled by stop() or by the dispatcher's cancel. One a job,
    // so that a cancel never reaches the next one.
    std::shared_ptr<CancelToken> cancel;
    bool cancel_asked = false;  // the dispatcher cancelled job
  };
  std::vector<Slot> slots_ GUARDED_BY(mu_);  // options_.slots of them
  // Spooled results the dispatcher has not answered for, oldest first. Only the
  // liaison (and stop(), after it) removes them.
  std::deque<std::shared_ptr<const SpooledResult>> pending_ GUARDED_BY(mu_);
  // pending_.front() has been sent; its reply is awaited.
  bool delivering_front_ GUARDED_BY(mu_) = false;
  TimePoint deliver_at_ GUARDED_BY(mu_);
  Backoff delivery_backoff_ GUARDED_BY(mu_);
  bool delivery_failing_ GUARDED_BY(mu_) = false;
  RegistrationSchedule registration_ GUARDED_BY(mu_);
  bool ever_registered_ GUARDED_BY(mu_) = false;

  std::vector<std::thread> workers_;  // one a slot
  std::thread liaison_;
};

}  // namespace ci::runner
