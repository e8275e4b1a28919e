// The answers to the query verbs, typed: what `status`, `runners` and `jobs` answer
// the dispatcher's clients, and what `ping` answers a runner's. to_reply() writes the
// wire format people read (cictl prints it aligned); the parsers read it back strictly,
// every field checked, so that no client splits reply text on its own.
//
//   status    OK <len>, then "<key> <value>" lines in a fixed order:
//             runners, runners-idle, runners-busy, runners-unreachable, jobs-queued,
//             jobs-running, jobs-finished, jobs-passed, jobs-failed, jobs-error,
//             jobs-timeout, jobs-cancelled, jobs-waiting, repos, results-dir (its value
//             is the rest of the line)
//   runners   OK <len>, the header "address state job attempt jobs-done last-seen-ms
//             slots busy labels repos", then one line a runner (job, attempt: one of
//             the jobs it runs; busy: slots in use; labels: comma-separated)
//   jobs      OK <len>, the header "id commit branch state status attempt runner
//             tests-run tests-failed duration-ms repo waiting", then one line a job,
//             oldest first (repo "-": the default; waiting: why no runner has taken
//             it, the rest of the line)
//   repos     OK <len>, the header "name url order jobs-queued jobs-running
//             jobs-finished", then one line a repository
//   pong      "pong" (alive), "pong idle", "pong busy <job> <attempt>" or
//             "pong slots <s1> ... <sN>", each slot "-" or "<job>/<attempt>"
// An unknown value is "-" on the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ci/protocol.h"
#include "ci/result.h"

namespace ci {

struct StatusReply {
  uint64_t runners = 0, runners_idle = 0, runners_busy = 0, runners_unreachable = 0;
  uint64_t jobs_queued = 0, jobs_running = 0, jobs_finished = 0;
  uint64_t jobs_passed = 0, jobs_failed = 0, jobs_error = 0, jobs_timeout = 0;
  uint64_t jobs_cancelled = 0;
  uint64_t jobs_waiting = 0;  // queued with no registered runner able to take them
  uint64_t repos = 0;         // named repositories
  std::string results_dir;

  bool operator==(const StatusReply&) const = default;
};

struct RunnerRow {
  std::string address;   // host:port
  std::string state;     // idle, offered, running, busy, unreachable
  JobId job = 0;         // 0: none ("-" on the wire)
  uint32_t attempt = 0;  // 0: none
  uint64_t jobs_done = 0;
  uint64_t last_seen_ms = 0;
  uint32_t slots = 1;
  uint32_t busy = 0;                     // slots in use
  std::vector<std::string> labels = {};  // sorted
  RepoScope repos = RepoScope::Default;

  bool operator==(const RunnerRow&) const = default;
};
struct RunnersReply {
  std::vector<RunnerRow> runners;

  bool operator==(const RunnersReply&) const = default;
};

struct JobRow {
  JobId id = 0;
  std::string commit, branch;
  std::string state;                          // queued, offered, running, finishing, finished
  std::optional<TestStatus> status;           // set once finished
  uint32_t attempt = 0;                       // 0: none yet
  std::string runner;                         // "": none
  int64_t tests_run = -1, tests_failed = -1;  // -1: unknown
  std::optional<uint64_t> duration_ms;        // set once finished
  std::string repo = {};                      // "": the default repository
  std::string waiting = {};                   // why it waits for a runner; "": it does not

  bool operator==(const JobRow&) const = default;
};
struct JobsReply {
  std::vector<JobRow> jobs;

  bool operator==(const JobsReply&) const = default;
};

struct RepoRow {
  std::string name, url;
  bool newest_first = false;
  uint64_t jobs_queued = 0, jobs_running = 0, jobs_finished = 0;

  bool operator==(const RepoRow&) const = default;
};
struct ReposReply {
  std::vector<RepoRow> repos;

  bool operator==(const ReposReply&) const = default;
};

struct SlotJob {
  JobId job = 0;  // 0: the slot is free
  uint32_t attempt = 0;

  bool operator==(const SlotJob&) const = default;
};
struct PongReply {
  // Alive: a bare "pong" (says only that it is alive). Slots: a runner of several slots.
  enum class State { Alive, Idle, Busy, Slots };
  State state = State::Alive;
  JobId job = 0;                    // Busy
  uint32_t attempt = 0;             // Busy
  std::vector<SlotJob> slots = {};  // Slots: one entry a slot

  bool operator==(const PongReply&) const = default;
};

// The state words the dispatcher's scheduler writes; the parsers accept no others.
bool is_runner_state(std::string_view word);
bool is_job_state(std::string_view word);

// The most rows a runners or jobs reply may hold: the largest `jobs` limit.
inline constexpr size_t kMaxReplyRows = 1000000;

Reply to_reply(const StatusReply& status);
Result<StatusReply> parse_status_reply(const Reply& reply);
Reply to_reply(const RunnersReply& runners);
Result<RunnersReply> parse_runners_reply(const Reply& reply);
Reply to_reply(const JobsReply& jobs);
Result<JobsReply> parse_jobs_reply(const Reply& reply);
Reply to_reply(const ReposReply& repos);
Result<ReposReply> parse_repos_reply(const Reply& reply);
Reply to_reply(const PongReply& pong);
Result<PongReply> parse_pong_reply(const Reply& reply);

}  // namespace ci
