// The messages of the line protocol, each a type with parse and serialize.
//
//   to the dispatcher                                  reply
//   status                                             OK <len> + key value lines
//   register <host> <port>                             OK
//   dispatch <commit> <branch>                         OK <job-id>
//   results <job> <attempt> <runner> <status> <run> <failed> <ms> <len> + output
//                                                      OK
//   runners                                            OK <len> + one line a runner
//   jobs [<limit>]                                     OK <len> + one line a job
//   retry <job>                                        OK <job>: a finished job runs again
//   abandon <job> <attempt> <runner>                   OK: a stopping runner gives it back
//   unregister <host> <port>                           OK: a stopping runner leaves
//   ping                                               pong
//   to the observer (with --listen)
//   poll                                               OK: fetch and look now
//   to a runner
//   runtest <job> <attempt> <commit> <branch>          OK | BUSY
//   ping                                               pong idle | pong busy <job> <attempt>
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

enum class TestStatus { Passed, Failed, Error, Timeout };
const char* to_string(TestStatus s);
bool parse_test_status(std::string_view text, TestStatus* out);

struct StatusRequest {};
struct RegisterRequest {
  std::string host;
  uint16_t port = 0;
};
struct DispatchRequest {
  std::string commit;
  std::string branch;
};
struct ResultsRequest {
  JobId job = 0;
  uint32_t attempt = 0;
  std::string runner;  // host:port the runner registered with
  TestStatus status = TestStatus::Error;
  int64_t tests_run = -1;     // -1: unknown
  int64_t tests_failed = -1;  // -1: unknown
  uint64_t duration_ms = 0;
  std::string output;
};
struct RunnersRequest {};
struct JobsRequest {
  uint64_t limit = 50;
};
struct PingRequest {};
struct RuntestRequest {
  JobId job = 0;
  uint32_t attempt = 0;
  std::string commit;
  std::string branch;
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
                             AbandonRequest, UnregisterRequest, PollRequest>;

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
