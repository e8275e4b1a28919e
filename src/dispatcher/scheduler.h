// The dispatcher's decisions, as plain code: which job goes to which runner, when a
// runner is dead, what a late or repeated result means. No sockets, threads or clocks:
// the caller passes events and the time, and holds the one lock around it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "ci/clock.h"
#include "ci/events.h"
#include "ci/protocol.h"

namespace ci {

enum class JobState { Queued, Offered, Running, Finishing, Finished };
const char* to_string(JobState s);
// The state named by to_string; Queued for anything else.
JobState parse_job_state(const std::string& name);

struct JobOutcome {
  TestStatus status = TestStatus::Error;
  int64_t tests_run = -1;
  int64_t tests_failed = -1;
  uint64_t duration_ms = 0;
  std::string runner;
  uint32_t attempt = 0;
  std::string reason;  // why the dispatcher ended it as an error, if it did
};

// A value kept on the heap: a job carries its outcome's pointer, not its size, until
// it has one. Copies copy the value.
template <typename T>
class Boxed {
 public:
  Boxed() = default;
  Boxed(const Boxed& other) : value_(other.value_ ? std::make_unique<T>(*other.value_) : nullptr) {}
  Boxed(Boxed&&) noexcept = default;
  Boxed& operator=(const Boxed& other) {
    if (this != &other) value_ = other.value_ ? std::make_unique<T>(*other.value_) : nullptr;
    return *this;
  }
  Boxed& operator=(Boxed&&) noexcept = default;
  // In place when there is a value: a reference to the old one stays valid.
  Boxed& operator=(T value) {
    if (value_) {
      *value_ = std::move(value);
    } else {
      value_ = std::make_unique<T>(std::move(value));
    }
    return *this;
  }
  void reset() { value_.reset(); }
  explicit operator bool() const { return value_ != nullptr; }
  T& operator*() const { return *value_; }
  T* operator->() const { return value_.get(); }

 private:
  std::unique_ptr<T> value_;
};

struct Job {
  JobId id = 0;
  std::string commit;
  std::string branch;
  JobState state = JobState::Queued;
  uint32_t attempt = 0;              // the latest attempt handed to a runner
  std::vector<std::string> runners;  // runners[i]: who got attempt i + 1
  uint32_t infra_failures = 0;       // attempts lost with their runner
  TimePoint queued_at{};
  TimePoint started_at{};
  Boxed<JobOutcome> outcome;  // set once finished
  Boxed<CommitInfo> info;     // what the observer said of the commit, if anything
  // Wall-clock times (unix ms) for people and the feed: 0 until they happen.
  int64_t queued_ms = 0, started_ms = 0, finished_ms = 0;
  uint64_t seq = 0;                   // the feed event of its latest change
  std::string repo;                   // "": the default repository
  std::vector<std::string> required;  // labels a runner must have, sorted
  std::string waiting;                // queued: why no registered runner can take it
  int64_t queue_key = 0;              // its place in its lane of the queue, while queued
  std::string current_runner() const { return runners.empty() ? "" : runners.back(); }
};

enum class RunnerState {
  Idle,         // free for a job
  Offered,      // a runtest is on its way to it
  Running,      // running one of our jobs
  BusyUnknown,  // said BUSY or "pong busy" for work we did not give it
  Suspect,      // did not answer; no jobs until it answers a ping
};
const char* to_string(RunnerState s);

// What a runner said of itself when it registered.
struct RunnerSpec {
  uint32_t slots = 1;
  std::vector<std::string> labels;  // sorted
  RepoScope scope = RepoScope::Default;
  bool operator==(const RunnerSpec&) const = default;
};

// A registered runner as the store keeps it.
struct StoredRunner {
  StoredRunner() = default;
  StoredRunner(std::string a, RunnerSpec s = {}) : address(std::move(a)), spec(std::move(s)) {}
  StoredRunner(const char* a) : address(a) {}
  std::string address;
  RunnerSpec spec;
  bool operator==(const StoredRunner&) const = default;
};

struct Repository {
  std::string name;
  std::string url;
  bool newest_first = false;
  bool operator==(const Repository&) const = default;
};

// One slot of a runner: a runner of N slots has N records, keyed by its address for
// the first slot and "<address>#<k>" for the others; each holds at most one job.
struct RunnerRecord {
  std::string address;  // host:port, as it registered
  uint32_t slot = 0;    // which of its slots this is
  RunnerSpec spec;      // the runner's, the same in each of its slots
  RunnerState state = RunnerState::Idle;
  JobId job = 0;
  uint32_t attempt = 0;
  int misses = 0;
  uint64_t epoch = 0;     // changes whenever its assignment changes
  uint64_t idle_seq = 0;  // order in which runners became idle: least recent first
  uint64_t jobs_done = 0;
  bool unconfirmed = false;  // its job was restored from an offer it may never have had
  TimePoint registered_at{};
  TimePoint last_seen{};
};

struct Offer {
  JobId job = 0;
  uint32_t attempt = 0;
  std::string commit;
  std::string branch;
  std::string runner;
  uint64_t epoch = 0;
  std::string repo = {};  // "": the default repository
  std::string url = {};   // a named repository's, for the runner to fetch it
  std::string slot = {};  // the key of the runner's slot it went to
};

struct PingTarget {
  std::string runner;
  uint64_t epoch = 0;                      // its first slot's
  std::vector<uint64_t> slot_epochs = {};  // each slot's, when pinged
};

// What a runner said it is doing in its pong.
struct RunnerReport {
  bool known = true;  // false: a bare "pong", which says only that it is alive
  bool busy = false;
  JobId job = 0;
  uint32_t attempt = 0;
  // A runner of several slots: the (job, attempt) of each busy slot. When set, busy/job/
  // attempt are ignored.
  std::optional<std::vector<std::pair<JobId, uint32_t>>> slots = {};
};

// The queue as the fair pick sees it. A lane holds a branch's queued jobs that need
// the same labels, by place: given-back jobs (negative keys, the latest first), then
// the others in the order they were queued.
struct QueueLane {
  std::map<int64_t, JobId> jobs;
  std::string waiting;  // why no registered runner can take its jobs; "" none
};
struct QueueBranch {
  std::map<std::vector<std::string>, QueueLane> lanes;  // by required labels
};
struct QueueRepo {
  bool newest_first = false;
  std::map<std::string, QueueBranch> branches;
};
struct QueueView {
  std::map<std::string, QueueRepo> repos;  // "" the default repository
  size_t size = 0;
};
// Where the round-robin stands: the repository served last, and in each repository
// the branch served last.
struct QueueCursor {
  std::optional<std::string> repo;
  std::map<std::string, std::string> branch;
};
struct QueuePick {
  std::string repo, branch;
  std::vector<std::string> lane;
  int64_t key = 0;
  JobId job = 0;
};
// Whether the runner asking can take a job of `repo` that requires `labels`.
using CanTake =
    std::function<bool(const std::string& repo, const std::vector<std::string>& labels)>;

// The fair queue: the next job for a free slot. Round-robin across repositories (after
// the cursor's), within one round-robin across branches, and within a branch given-back
// jobs first, then the oldest (newest with newest_first). Only lanes `can_take` accepts
// are looked at; the cost is O(repositories + branches + lanes), not O(jobs).
std::optional<QueuePick> pick_next(const QueueView& view, const QueueCursor& cursor,
                                   const CanTake& can_take);
// The cursor after `pick` was served.
void advance(QueueCursor& cursor, const QueuePick& pick);

// Whether a runner of `spec` may take a job of `repo` requiring `labels`.
bool serves(const RunnerSpec& spec, const std::string& repo,
            const std::vector<std::string>& labels);

enum class ResultVerdict {
  Accept,      // record it (call finish_result or abandon_result after)
  Duplicate,   // the job already has its result: answer OK and drop it
  UnknownJob,  // ERR
  WrongRunner  // ERR: not the runner that attempt was given to
};

// Something the caller should log.
struct SchedulerEvent {
  std::string text;
};

class Scheduler {
 public:
  struct Options {
    int heartbeat_misses = 3;   // a runner is dropped after this many missed pings in a row
    uint32_t max_attempts = 3;  // attempts lost to infrastructure before the job is an error
    // A newer commit queued on a branch cancels the branch's jobs still queued.
    bool cancel_superseded = false;
  };

  explicit Scheduler(Options options);

  // Runners.
  // Returns true for a runner not known before. A known one is refreshed.
  // A known runner registering with another spec (slots, labels, repositories) is
  // updated; slots it no longer has give their jobs back uncounted.
  bool register_runner(const std::string& address, TimePoint now, const RunnerSpec& spec = {});
  // The runners to ping: all but those with a runtest on its way and those heard from
  // after `heard_since` (the default: all of them).
  std::vector<PingTarget> ping_targets(TimePoint heard_since = TimePoint::max()) const;
  void ping_answered(const PingTarget& target, const RunnerReport& report, TimePoint now);
  // A missed ping; the K-th in a row drops the runner and requeues its job.
  void ping_missed(const PingTarget& target, TimePoint now);

  // A runner leaving on purpose: dropped at once; a job it still had is requeued
  // without counting as a lost attempt.
  bool unregister_runner(const std::string& address, TimePoint now);

  // Jobs. A commit already queued, running or finished on the branch is not queued
  // again: the existing job's id comes back with created = false.
  struct Submitted {
    JobId id = 0;
    bool created = false;
  };
  // The key is (repo, commit, branch): the same commit in two repositories is two jobs.
  Submitted submit(const std::string& commit, const std::string& branch, TimePoint now,
                   const CommitInfo& info = {}, const std::string& repo = "",
                   const std::vector<std::string>& required = {});

  // Repositories: adds or updates one.
  void set_repo(const Repository& repo);
  const std::map<std::string, Repository>& repos() const { return repos_; }
  const Repository* repo(const std::string& name) const;

  enum class Change { Done, Unknown, NotApplicable };
  // A finished job runs again, as a new attempt at the back of the queue.
  Change retry(JobId job, TimePoint now);
  // A stopping runner gives back the job it will not finish: requeued at the front,
  // not counted as lost.
  Change abandon(JobId job, uint32_t attempt, const std::string& runner, TimePoint now);

  // Ends a job that has not finished as cancelled, at once: it is recorded like a
  // result (take_gave_up), and a runner running it should be told to stop.
  struct Cancelled {
    Change change = Change::Unknown;
    std::string runner;  // the runner that has it (Done only); "" if none
    uint32_t attempt = 0;
  };
  Cancelled cancel(JobId job, const std::string& why, TimePoint now);

  // Assignment. next_offer takes the runner slot idle longest that can take a job, and
  // the job pick_next chooses for it.
  bool can_offer() const;
  std::optional<Offer> next_offer(TimePoint now);
  void offer_accepted(const Offer& offer, TimePoint now);
  enum class Refusal { Busy, Unreachable, Rejected };
  void offer_refused(const Offer& offer, Refusal why, TimePoint now);

  // Results, in two steps so that the result file is written outside the lock.
  ResultVerdict check_result(JobId job, uint32_t attempt, const std::string& runner);
  // After Accept: the job's result is durable. Frees the runner.
  // `cases`: the attempt's test cases, for the feed. `release`: false for a job the
  // dispatcher cancelled, whose runner is busy until it says it has stopped (its own
  // result, then a duplicate, or an idle pong).
  void finish_result(JobId job, const JobOutcome& outcome, TimePoint now,
                     std::vector<TestCase> cases = {}, bool release = true);
  // After Accept: recording failed; the job goes back to where it was.
  void abandon_result(JobId job, TimePoint now);
  // Frees the runner that sent a result for (job, attempt) if that is what it runs.
  void release_runner(const std::string& runner, JobId job, uint32_t attempt, TimePoint now);

  // Queries.
  const Job* job(JobId id) const;
  const std::map<JobId, Job>& jobs() const { return jobs_; }
  // Each slot of each runner (see RunnerRecord).
  const std::map<std::string, RunnerRecord>& runners() const { return runners_; }
  // The records of one runner's slots, first slot first; empty if it is not registered.
  std::vector<const RunnerRecord*> slots_of(const std::string& address) const;
  size_t queued() const { return queue_.size; }
  const QueueView& queue() const { return queue_; }
  size_t count_jobs(JobState state) const;
  // Queued jobs no registered runner can take.
  size_t count_waiting() const;

  // Puts back what a store had: queued and offered jobs are queued again (in id
  // order); a running job stays with its runner, which must answer pings to keep it;
  // other runners are pinged before they get work.
  void restore(std::vector<Job> jobs, const std::vector<StoredRunner>& runners, TimePoint now,
               const std::vector<Repository>& repos = {});

  // What must be written to the store since the last call.
  struct Dirty {
    std::vector<JobId> jobs;
    std::vector<StoredRunner> runners_added;  // new or changed
    std::vector<std::string> runners_removed;
    std::vector<Repository> repos;  // added or changed
    bool empty() const {
      return jobs.empty() && runners_added.empty() && runners_removed.empty() && repos.empty();
    }
  };
  Dirty take_dirty();
  // A write failed: these are written again with the next changes.
  void return_dirty(Dirty dirty);

  // What changed since the last call, for the log.
  std::vector<SchedulerEvent> take_events();

  // The event feed. Wall-clock times are the caller's steady `now` moved to the wall
  // clock by one origin pair, so that the scheduler reads no clock of its own.
  void set_wall_origin(TimePoint steady, int64_t wall_ms);
  int64_t wall_ms(TimePoint t) const;
  // The store's last seq: numbering goes on from it.
  void restore_feed_seq(uint64_t last_seq) {
    next_feed_seq_ = std::max(next_feed_seq_, last_seq + 1);
  }
  // The log of (job, attempt) has `size` bytes: one job.log event a batch, the newest.
  void log_grew(JobId job, uint32_t attempt, uint64_t size, TimePoint now);
  // Events since the last call, in seq order; give them back if writing them failed.
  std::vector<FeedEvent> take_feed();
  void return_feed(std::vector<FeedEvent> events);
  uint64_t last_feed_seq() const { return next_feed_seq_ - 1; }
  JobInfo job_info(const Job& job) const;
  // Jobs the scheduler ended as errors (too many attempts lost): each is Finishing
  // with its outcome set; the caller records it, then calls finish_result.
  std::vector<JobId> take_gave_up();
  // Attempts that ended without a result of theirs (given back, lost with their runner,
  // a job re-offered as a new attempt) since the last call: their logs are finished
  // (LogStore::finish), so that they take no memory and a late chunk is not written.
  // An attempt may be named more than once.
  std::vector<std::pair<JobId, uint32_t>> take_ended_attempts();

 private:
  void set_idle(RunnerRecord& r);
  void leave_idle(RunnerRecord& r);
  // The runner lost the job it was running (it died or forgot it).
  // `counts` says whether it counts towards max_attempts.
  void lose_job(RunnerRecord& r, const std::string& why, TimePoint now, bool counts = true);
  void requeue_front(Job& job, TimePoint now);
  void cancel_queued_on(const std::string& repo, const std::string& branch,
                        const std::string& commit, TimePoint now);
  // The queue: in at the back (positive key) or at the head of its branch; out.
  void enqueue(Job& job, bool front);
  void dequeue(Job& job);
  std::string waiting_reason(const std::string& repo, const std::vector<std::string>& labels) const;
  // Runners came or went: lanes whose reason changed feed their jobs again.
  void update_waiting(TimePoint now);
  RunnerRecord* find_slot(const std::string& address, uint32_t slot);
  // The slot of `address` holding (job, attempt); attempt 0: any attempt.
  RunnerRecord* slot_with(const std::string& address, JobId job, uint32_t attempt = 0);
  static std::string slot_key(const std::string& address, uint32_t slot) {
    return slot == 0 ? address : address + "#" + std::to_string(slot);
  }
  RunnerRecord& add_slot(const std::string& address, uint32_t slot, const RunnerSpec& spec,
                         TimePoint now);
  // By value: callers pass the runner's own address, which erasing it frees.
  void drop_runner(std::string address, TimePoint now);
  void event(std::string text) { events_.push_back({std::move(text)}); }
  void feed_job(Job& job, EventKind kind, TimePoint now, std::vector<TestCase> cases = {});
  void feed_runner(const std::string& address, EventKind kind, TimePoint now);
  void touch(const Job& job) { dirty_jobs_.insert(job.id); }
  void touch_runner(const std::string& address, bool present) { dirty_runners_[address] = present; }
  void remove_slot(RunnerRecord& r);

  Options options_;
  JobId next_job_ = 1;
  uint64_t next_seq_ = 1;
  std::map<JobId, Job> jobs_;
  // (repo, commit, branch), viewing the job's own strings: map nodes never move.
  using CommitKey = std::tuple<std::string_view, std::string_view, std::string_view>;
  std::map<CommitKey, JobId> by_commit_;
  QueueView queue_;
  QueueCursor cursor_;
  int64_t next_back_key_ = 1, next_front_key_ = -1;
  std::map<std::string, Repository> repos_;
  std::set<std::string> dirty_repos_;
  std::map<std::string, RunnerRecord> runners_;
  std::set<std::pair<uint64_t, std::string>> idle_;  // (idle_seq, slot key)
  std::vector<SchedulerEvent> events_;
  std::vector<FeedEvent> feed_;
  uint64_t next_feed_seq_ = 1;
  TimePoint wall_origin_steady_{};
  int64_t wall_origin_ms_ = 0;
  std::vector<JobId> gave_up_;
  std::vector<std::pair<JobId, uint32_t>> ended_attempts_;
  std::set<JobId> dirty_jobs_;
  std::map<std::string, bool> dirty_runners_;  // address -> registered (the latest change)
};

}  // namespace ci
