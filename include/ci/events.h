// The dispatcher's event feed: every change it makes (a job queued, started, its log
// grown, finished or cancelled; a runner joined or left) gets a sequence number in its
// store. A subscriber (the reporter) reads the feed from a number on with the `events`
// verb and follows it live; `snapshot` gives the jobs as they are now, for a subscriber
// that starts from nothing or fell behind the feed's retention.
//
// On the wire each event is one JSON line:
//   {"seq":12,"ms":1764720000000,"kind":"job.finished","job":{...JobInfo...},
//    "cases":[...]}                                      (job.finished only)
//   {"seq":13,"ms":...,"kind":"job.log","job":{"id":4,...},"attempt":1,"size":2048}
//   {"seq":14,"ms":...,"kind":"runner.joined","runner":"127.0.0.1:8900"}
// A JobInfo is the whole job as it is after the change, with the seq of that change:
// a subscriber applies a job's event only when its seq is newer than what it holds, so
// a snapshot and the events after it can overlap without anything applied twice.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ci/protocol.h"
#include "ci/result.h"
#include "ci/test_cases.h"

namespace ci {

// What the observer knows of a commit and sends with `dispatch` (all optional).
struct CommitInfo {
  std::string author;  // "Alice Example"
  std::string email;
  std::string subject;  // the first line of the message
  int64_t time = 0;     // author time, unix seconds; 0: unknown

  bool operator==(const CommitInfo&) const = default;
  bool empty() const { return author.empty() && email.empty() && subject.empty() && time == 0; }
};
// A small JSON object; fields bounded (author, email 256 bytes, subject 1024).
inline constexpr size_t kMaxCommitInfo = 4096;  // bytes of it on the wire
std::string serialize_commit_info(const CommitInfo& info);
Result<CommitInfo> parse_commit_info(std::string_view body);

struct JobInfo {
  JobId id = 0;
  std::string commit, branch;
  CommitInfo commit_info;
  std::string state;                 // queued, offered, running, finishing, finished
  std::optional<TestStatus> status;  // once finished (cancelled included)
  uint32_t attempt = 0;              // the latest attempt handed to a runner; 0: none
  std::string runner;                // who has (or had) the latest attempt; "" none
  int64_t tests_run = -1, tests_failed = -1;
  uint64_t duration_ms = 0;                                // the test's own duration, once finished
  int64_t queued_ms = 0, started_ms = 0, finished_ms = 0;  // unix ms; 0: not yet
  std::string reason;                 // why it ended as an error or was cancelled
  uint64_t seq = 0;                   // the feed event of its latest change
  std::string repo;                   // "": the default repository
  std::vector<std::string> required;  // labels a runner must have
  std::string waiting;                // queued: why no runner has taken it yet; "" none

  bool operator==(const JobInfo&) const = default;
};

enum class EventKind {
  JobQueued,
  JobStarted,
  JobLog,
  JobFinished,
  JobCancelled,
  RunnerJoined,
  RunnerLeft
};
const char* to_string(EventKind kind);  // "job.queued", ..., "runner.left"
bool parse_event_kind(std::string_view text, EventKind* out);

struct FeedEvent {
  uint64_t seq = 0;
  int64_t time_ms = 0;  // unix ms
  EventKind kind = EventKind::JobQueued;
  JobInfo job;                  // job.*: the job after the change (job.log: only id set)
  std::string runner;           // runner.*
  uint32_t log_attempt = 0;     // job.log: which attempt's log grew
  uint64_t log_size = 0;        // job.log: its bytes so far
  std::vector<TestCase> cases;  // job.finished: the cases of the finishing attempt

  bool operator==(const FeedEvent&) const = default;
};

std::string serialize_job_info(const JobInfo& job);  // one JSON object, no newline
Result<JobInfo> parse_job_info(std::string_view json);
std::string serialize_event(const FeedEvent& event);  // one JSON line, '\n' included
Result<FeedEvent> parse_event(std::string_view line);
// A body of event lines (the `events` reply), in order.
Result<std::vector<FeedEvent>> parse_events(std::string_view body);

}  // namespace ci
