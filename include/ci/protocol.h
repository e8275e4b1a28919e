// The messages of the line protocol, each a type with parse and serialize.
//
//   to the dispatcher                                  reply
//   status                                             OK <len> + key value lines
//   register <host> <port> [slots=<n>] [labels=<l>,...] [repos=default|named|all]
//                                                      OK: a runner of n slots (1..64;
//           default 1), with those labels, serving the default repository (a clone
//           made by hand; the default), named ones (it provisions them) or both
//   dispatch <commit> <branch> [repo=<name>] [require=<l>,...] [<len> + commit info]
//                                                      OK <job-id>: without repo=, the
//           default repository; require=: labels a runner must have to take it
//   repo <name> <url> [order=oldest|newest]            OK: adds or updates a repository
//   repos                                              OK <len> + one line a repository
//   results <job> <attempt> <runner> <status> <run> <failed> <ms> [<cases-len>] <len>
//           + output, then <cases-len> bytes of test cases (ci/test_cases.h)
//                                                      OK
//   log <job> <attempt> <runner> <offset> <len> + bytes
//                                                      OK <received>: the attempt's log
//           holds bytes [0, received) of the test's output (a chunk at an offset already
//           held is not written twice; one past it says the runner dropped what is
//           between, and the log marks them omitted); the runner sends from <received> on
//   logread <job> <attempt> <offset> <max>              OK <start> <total> <done> <len>
//           + at most <max> bytes of the log from <offset> (attempt 0: the latest); the
//           body starts at byte <start> (> offset when bytes were omitted there);
//           <total>: bytes received so far; <done>: 1 once the attempt has ended
//   cancel <job>                                       OK: cancelled (queued or running)
//   tests <job> [<attempt>]                            OK <len> + test cases (JSON lines)
//   job <job>                                          OK <len> + the job (JSON, ci/events.h)
//   events <from> <max> <wait-ms>                      OK <oldest> <last> <len> + events
//           with seq > from, at most <max> (JSON lines, ci/events.h); with none yet, the
//           reply waits up to <wait-ms> for one. from < oldest - 1: fell behind the
//           retention (the body is empty): take a snapshot
//   snapshot <after-job> <limit>                       OK <seq> <len> + jobs (JSON lines)
//           with id > after-job; <seq>: the feed's last seq before they were read
//   runners                                            OK <len> + one line a runner
//   jobs [<limit>] [branch=<b>] [status=<s>] [repo=<r>]  OK <len> + one line a job
//   retry <job>                                        OK <job>: a finished job runs again
//   abandon <job> <attempt> <runner>                   OK: a stopping runner gives it back
//   unregister <host> <port>                           OK: a stopping runner leaves
//   ping                                               pong
//   to the observer (with --listen)
//   poll                                               OK: fetch and look now
//   to a runner
//   runtest <job> <attempt> <commit> <branch> [repo=<name> url=<url>]
//                                                      OK | BUSY (every slot taken);
//           without repo=, the default repository (the runner's own clone)
//   cancel <job> <attempt>                             OK: it kills the test and reports
//                                                      "cancelled"; ERR if not running it
//   ping                                               pong idle | pong busy <job> <attempt>
//                                                      | pong slots <s1> ... <sN>: each
//           slot "-" (free) or "<job>/<attempt>" (a runner of more than one slot)
//
// Anything malformed is answered "ERR <reason>" and the connection is closed. The bodies
// of the query replies (status, runners, jobs) and the runner's pong are typed in
// ci/replies.h: read and write them there, never by splitting text.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "ci/framing.h"
#include "ci/result.h"

namespace ci {

using JobId = uint64_t;

enum class TestStatus { Passed, Failed, Error, Timeout, Cancelled };
const char* to_string(TestStatus s);
bool parse_test_status(std::string_view text, TestStatus* out);

struct StatusRequest {};
inline constexpr uint32_t kMaxSlots = 64;
// Which repositories a runner takes jobs of.
enum class RepoScope { Default, Named, All };
const char* to_string(RepoScope scope);
struct RegisterRequest {
  std::string host;
  uint16_t port = 0;
  uint32_t slots = 1;
  std::vector<std::string> labels = {};  // sorted, each once
  RepoScope repos = RepoScope::Default;
};
struct DispatchRequest {
  std::string commit;
  std::string branch;
  std::string info = {};  // the commit's CommitInfo (ci/events.h), serialized; "" none
  std::string repo = {};  // "": the default repository
  std::vector<std::string> required = {};  // labels, sorted, each once
};
struct RepoRequest {
  std::string name;
  std::string url;
  bool newest_first = false;  // a branch's newest queued commit runs before its backlog
};
struct ReposRequest {};
struct ResultsRequest {
  JobId job = 0;
  uint32_t attempt = 0;
  std::string runner;  // host:port the runner registered with
  TestStatus status = TestStatus::Error;
  int64_t tests_run = -1;     // -1: unknown
  int64_t tests_failed = -1;  // -1: unknown
  uint64_t duration_ms = 0;
  std::string output;
  std::string cases = {};  // serialized test cases (ci/test_cases.h); "" none
};
struct RunnersRequest {};
struct JobsRequest {
  uint64_t limit = 50;
  std::string branch = {};  // "": any
  std::string status = {};  // a TestStatus or job state word; "": any
  std::string repo = {};    // "": any; "-": the default repository
};
struct LogRequest {
  JobId job = 0;
  uint32_t attempt = 0;
  std::string runner;  // host:port
  uint64_t offset = 0;
  std::string bytes;
};
struct LogReadRequest {
  JobId job = 0;
  uint32_t attempt = 0;  // 0: the latest
  uint64_t offset = 0;
  uint64_t max = 0;
};
// To the dispatcher: attempt 0. To a runner: the attempt it runs.
struct CancelRequest {
  JobId job = 0;
  uint32_t attempt = 0;
};
struct TestsRequest {
  JobId job = 0;
  uint32_t attempt = 0;  // 0: the latest
};
struct JobRequest {
  JobId job = 0;
};
struct EventsRequest {
  uint64_t from = 0;
  uint64_t max = 1000;
  uint64_t wait_ms = 0;
};
struct SnapshotRequest {
  JobId after = 0;
  uint64_t limit = 1000;
};
struct PingRequest {};
struct RuntestRequest {
  JobId job = 0;
  uint32_t attempt = 0;
  std::string commit;
  std::string branch;
  std::string repo = {};  // "": the default repository
  std::string url = {};   // where to fetch a named repository from (set with repo)
};

struct RetryRequest {
  JobId job = 0;
};
struct AbandonRequest {
  JobId job = 0;
  uint32_t attempt = 0;
  std::string runner;  // host:port
};
struct UnregisterRequest {
  std::string host;
  uint16_t port = 0;
};
struct PollRequest {};

using Request = std::variant<StatusRequest, RegisterRequest, DispatchRequest, ResultsRequest,
                             RunnersRequest, JobsRequest, PingRequest, RuntestRequest, RetryRequest,
                             AbandonRequest, UnregisterRequest, PollRequest, LogRequest,
                             LogReadRequest, CancelRequest, TestsRequest, JobRequest, EventsRequest,
                             SnapshotRequest, RepoRequest, ReposRequest>;

// Bounds of the new verbs.
inline constexpr uint64_t kMaxLogRead = 1u << 20;    // bytes a logread may ask for
inline constexpr uint64_t kMaxEventsWaitMs = 60000;  // the longest an events call waits
inline constexpr uint64_t kMaxEventsPerRead = 10000;
inline constexpr uint64_t kMaxSnapshotJobs = 10000;

// Body rule for requests: which request headers end with a body length.
bool request_has_body(const std::vector<std::string>& words);
Result<Request> parse_request(const Frame& frame);
Frame serialize_request(const Request& request);

struct Reply {
  enum class Kind { Ok, Busy, Pong, Err };
  Kind kind = Kind::Ok;
  std::vector<std::string> args;  // words after the first (ERR: the reason's words)
  std::string body;
  bool has_body = false;

  static Reply ok(std::vector<std::string> args = {});
  static Reply ok_with_body(std::string body);
  static Reply busy();
  static Reply pong(std::vector<std::string> args = {});
  static Reply err(std::string_view reason);
  std::string reason() const;  // ERR's reason as one string
};

// Body rule for replies to `request_verb`: an OK reply to a query verb carries a body.
bool reply_has_body(const std::string& request_verb, const std::vector<std::string>& words);
Result<Reply> parse_reply(const Frame& frame);
Frame serialize_reply(const Reply& reply);

}  // namespace ci
