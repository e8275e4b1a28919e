#include "ci/protocol.h"

#include <gtest/gtest.h>

#include "ci/framing.h"

namespace ci {
namespace {

const std::string kCommit(40, 'a');
const std::string kCommit256(64, 'f');

// Serializes, frames the bytes with the request body rule, parses: the same request.
Request round_trip(const Request& request) {
  std::string bytes = serialize(serialize_request(request));
  FrameParser parser({}, request_has_body);
  size_t used = 0;
  EXPECT_EQ(parser.feed(bytes, &used), FrameParser::Status::Done);
  EXPECT_EQ(used, bytes.size());
  auto parsed = parse_request(parser.take());
  EXPECT_TRUE(parsed.ok()) << parsed.error();
  return parsed.ok() ? *parsed : Request{};
}

TEST(Protocol, EveryRequestRoundTrips) {
  EXPECT_TRUE(std::holds_alternative<StatusRequest>(round_trip(StatusRequest{})));
  EXPECT_TRUE(std::holds_alternative<PingRequest>(round_trip(PingRequest{})));
  EXPECT_TRUE(std::holds_alternative<RunnersRequest>(round_trip(RunnersRequest{})));
  EXPECT_TRUE(std::holds_alternative<PollRequest>(round_trip(PollRequest{})));
  EXPECT_EQ(std::get<JobsRequest>(round_trip(JobsRequest{7})).limit, 7u);

  auto reg = std::get<RegisterRequest>(round_trip(RegisterRequest{"127.0.0.1", 8901}));
  EXPECT_EQ(reg.host, "127.0.0.1");
  EXPECT_EQ(reg.port, 8901);

  auto d = std::get<DispatchRequest>(round_trip(DispatchRequest{kCommit256, "feature/x-1"}));
  EXPECT_EQ(d.commit, kCommit256);
  EXPECT_EQ(d.branch, "feature/x-1");

  auto rt = std::get<RuntestRequest>(round_trip(RuntestRequest{12, 3, kCommit, "main"}));
  EXPECT_EQ(rt.job, 12u);
  EXPECT_EQ(rt.attempt, 3u);
  EXPECT_EQ(rt.commit, kCommit);
  EXPECT_EQ(rt.branch, "main");

  EXPECT_EQ(std::get<RetryRequest>(round_trip(RetryRequest{9})).job, 9u);
  auto ab = std::get<AbandonRequest>(round_trip(AbandonRequest{4, 2, "127.0.0.1:8900"}));
  EXPECT_EQ(ab.job, 4u);
  EXPECT_EQ(ab.attempt, 2u);
  EXPECT_EQ(ab.runner, "127.0.0.1:8900");
  auto unreg = std::get<UnregisterRequest>(round_trip(UnregisterRequest{"::1", 8905}));
  EXPECT_EQ(unreg.host, "::1");
  EXPECT_EQ(unreg.port, 8905);

  ResultsRequest res;
  res.job = 5;
  res.attempt = 2;
  res.runner = "127.0.0.1:8900";
  res.status = TestStatus::Timeout;
  res.tests_run = -1;
  res.tests_failed = 4;
  res.duration_ms = 1234;
  res.output = std::string("line: one\nline: two\n\0\xff\r\n", 23);
  auto back = std::get<ResultsRequest>(round_trip(res));
  EXPECT_EQ(back.job, 5u);
  EXPECT_EQ(back.attempt, 2u);
  EXPECT_EQ(back.runner, res.runner);
  EXPECT_EQ(back.status, TestStatus::Timeout);
  EXPECT_EQ(back.tests_run, -1);
  EXPECT_EQ(back.tests_failed, 4);
  EXPECT_EQ(back.duration_ms, 1234u);
  EXPECT_EQ(back.output, res.output);  // byte for byte
}

TEST(Protocol, RepliesRoundTrip) {
  for (const Reply& r : {Reply::ok(), Reply::ok({"42"}), Reply::busy(), Reply::pong({"idle"}),
                         Reply::pong({"busy", "3", "1"}), Reply::err("unknown job 9")}) {
    auto parsed = parse_reply(serialize_reply(r));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed->kind, r.kind);
    EXPECT_EQ(parsed->args, r.args);
  }
  Reply body = Reply::ok_with_body("runners 2\nqueued 0\n");
  std::string bytes = serialize(serialize_reply(body));
  FrameParser parser({},
                     [](const std::vector<std::string>& w) { return reply_has_body("status", w); });
  size_t used = 0;
  ASSERT_EQ(parser.feed(bytes, &used), FrameParser::Status::Done);
  auto parsed = parse_reply(parser.take());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->body, body.body);
  // An ERR reason stays one line whatever it was given.
  EXPECT_EQ(Reply::err("bad\nthing\x01").reason(), "bad\\x0athing\\x01");
}

std::string error_of(const std::string& line) {
  FrameParser parser({}, request_has_body);
  size_t used = 0;
  auto status = parser.feed(line, &used);
  if (status == FrameParser::Status::Bad) return parser.error();
  if (status != FrameParser::Status::Done) return "need more";
  auto parsed = parse_request(parser.take());
  return parsed.ok() ? "" : parsed.error();
}

TEST(Protocol, MalformedRequestsGetTheRightReason) {
  struct Case {
    std::string line, reason;
  };
  for (const auto& c : std::vector<Case>{
           {"frobnicate\n", "unknown verb 'frobnicate'"},
           {"dispatch\n", "usage: dispatch <commit> <branch>"},
           {"dispatch " + kCommit + "\n", "usage: dispatch <commit> <branch>"},
           {"dispatch 123 master\n", "commit id must be 40 or 64 hex digits"},
           {"dispatch ../../etc/passwd master\n", "commit id must be 40 or 64 hex digits"},
           {"dispatch " + std::string(40, 'g') + " master\n", "40 or 64 hex"},
           {"dispatch " + kCommit + " a..b\n", "'..'"},
           {"dispatch " + kCommit + " -rf\n", "starts with '-'"},
           {"dispatch " + kCommit + " x.lock\n", ".lock"},
           {"register host\n", "usage: register"},
           {"register host 0\n", "port must be"},
           {"register host 70000\n", "port must be"},
           {"register " + std::string(300, 'h') + " 8900\n", "host longer than"},
           {"register ho/st 8900\n", "host contains"},
           {"runtest 0 1 " + kCommit + " master\n", "job id must be"},
           {"runtest 1 x " + kCommit + " master\n", "attempt must be"},
           {"results 1 1 h:1 passed 1 0 0\n", "usage: results"},
           {"results 1 1 h:1 passed 1 0 5 -3\n", "body length is not a number"},
           {"results 1 1 h:1 weird 1 0 5 0\n", "status must be"},
           {"results 1 1 nohost passed 1 0 5 0\n", "runner:"},
           {"results 1 1 h:1 passed x 0 5 0\n", "test counts"},
           {"status extra\n", "usage: status"},
           {"jobs 0\n", "jobs limit"},
           {"retry\n", "usage: retry <job>"},
           {"retry abc\n", "job id must be"},
           {"abandon 1 1\n", "usage: abandon"},
           {"abandon 1 1 nowhere\n", "runner:"},
           {"unregister h 0\n", "port must be"},
       }) {
    EXPECT_NE(error_of(c.line).find(c.reason), std::string::npos)
        << "line: " << c.line << "error: " << error_of(c.line);
  }
}

// A commit id becomes a job and a file name: the same commit spelt in capitals must be
// the same job and the same file.
TEST(Protocol, CommitIdsArriveInLowerCase) {
  std::string upper = "0123456789ABCDEF0123456789abcdefABCDEF01";
  std::string lower = "0123456789abcdef0123456789abcdefabcdef01";
  auto parse = [](const std::string& line) {
    FrameParser parser({}, request_has_body);
    size_t used = 0;
    EXPECT_EQ(parser.feed(line, &used), FrameParser::Status::Done);
    auto parsed = parse_request(parser.take());
    EXPECT_TRUE(parsed.ok()) << parsed.error();
    return parsed.ok() ? *parsed : Request{};
  };
  EXPECT_EQ(std::get<DispatchRequest>(parse("dispatch " + upper + " main\n")).commit, lower);
  EXPECT_EQ(std::get<RuntestRequest>(parse("runtest 1 1 " + upper + " main\n")).commit, lower);
  std::string upper256(64, 'F');
  EXPECT_EQ(std::get<DispatchRequest>(parse("dispatch " + upper256 + " main\n")).commit,
            std::string(64, 'f'));
}

TEST(Protocol, ValidNamesAreAccepted) {
  for (std::string branch : {"master", "feature/login", "release-1.2", "user/a_b/c"})
    EXPECT_EQ(error_of("dispatch " + kCommit + " " + branch + "\n"), "") << branch;
  EXPECT_EQ(error_of("dispatch " + std::string(40, 'A') + " main\n"), "");
}

}  // namespace
}  // namespace ci
