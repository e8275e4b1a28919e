#include "ci/replies.h"

#include <gtest/gtest.h>

#include "ci/framing.h"

namespace ci {
namespace {

const std::string kCommit(40, 'a');

// Serializes a reply to a query verb, frames the bytes again and parses the frame: what
// a client receives.
Reply over_the_wire(const Reply& reply, const std::string& verb) {
  std::string bytes = serialize(serialize_reply(reply));
  FrameParser parser({},
                     [&](const std::vector<std::string>& w) { return reply_has_body(verb, w); });
  size_t used = 0;
  EXPECT_EQ(parser.feed(bytes, &used), FrameParser::Status::Done);
  auto parsed = parse_reply(parser.take());
  EXPECT_TRUE(parsed.ok()) << parsed.error();
  return parsed.ok() ? *parsed : Reply{};
}

StatusReply sample_status() {
  StatusReply s;
  s.runners = 3;
  s.runners_idle = 1;
  s.runners_busy = 1;
  s.runners_unreachable = 1;
  s.jobs_queued = 4;
  s.jobs_running = 1;
  s.jobs_finished = 10;
  s.jobs_passed = 6;
  s.jobs_failed = 2;
  s.jobs_error = 1;
  s.jobs_timeout = 1;
  s.jobs_cancelled = 2;
  s.jobs_waiting = 1;
  s.repos = 2;
  s.results_dir = "/var/lib/ci/test results";
  return s;
}

Reply body_reply(std::string body) { return Reply::ok_with_body(std::move(body)); }

TEST(Replies, StatusKeepsTheWireFormatAndRoundTrips) {
  StatusReply s = sample_status();
  Reply r = to_reply(s);
  EXPECT_EQ(r.body,
            "runners 3\nrunners-idle 1\nrunners-busy 1\nrunners-unreachable 1\n"
            "jobs-queued 4\njobs-running 1\njobs-finished 10\njobs-passed 6\njobs-failed 2\n"
            "jobs-error 1\njobs-timeout 1\njobs-cancelled 2\njobs-waiting 1\nrepos 2\n"
            "results-dir /var/lib/ci/test results\n");
  auto back = parse_status_reply(over_the_wire(r, "status"));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, s);
}

TEST(Replies, RunnersKeepTheWireFormatAndRoundTrip) {
  RunnersReply r;
  r.runners.push_back({"127.0.0.1:8900", "idle", 0, 0, 4, 120});
  r.runners.push_back(
      {"[::1]:8901", "running", 7, 2, 0, 3, 4, 3, {"gpu", "linux"}, RepoScope::All});
  r.runners.push_back({"[::1]:8902", "busy", 9, 1, 2, 5, 2, 2, {}, RepoScope::Named});
  Reply reply = to_reply(r);
  EXPECT_EQ(reply.body,
            "address state job attempt jobs-done last-seen-ms slots busy labels repos\n"
            "127.0.0.1:8900 idle - - 4 120 1 0 - default\n"
            "[::1]:8901 running 7 2 0 3 4 3 gpu,linux all\n"
            "[::1]:8902 busy 9 1 2 5 2 2 - named\n");
  auto back = parse_runners_reply(over_the_wire(reply, "runners"));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, r);
  auto none = parse_runners_reply(to_reply(RunnersReply{}));
  ASSERT_TRUE(none.ok()) << none.error();
  EXPECT_TRUE(none->runners.empty());
}

TEST(Replies, JobsKeepTheWireFormatAndRoundTrip) {
  JobsReply r;
  JobRow queued;
  queued.id = 1;
  queued.commit = kCommit;
  queued.branch = "main";
  queued.state = "queued";
  JobRow running = queued;
  running.id = 2;
  running.branch = "feature/x";
  running.state = "running";
  running.attempt = 1;
  running.runner = "127.0.0.1:8900";
  JobRow finished = running;
  finished.id = 3;
  finished.state = "finished";
  finished.status = TestStatus::Failed;
  finished.attempt = 2;
  finished.tests_run = 5;
  finished.tests_failed = 1;
  finished.duration_ms = 1234;
  JobRow timed_out = finished;
  timed_out.id = 4;
  timed_out.status = TestStatus::Timeout;
  timed_out.tests_run = -1;
  timed_out.tests_failed = -1;
  JobRow waiting = queued;
  waiting.id = 5;
  waiting.repo = "tools";
  waiting.waiting = "waiting for a runner with py3.11";
  r.jobs = {queued, running, finished, timed_out, waiting};
  Reply reply = to_reply(r);
  EXPECT_EQ(reply.body,
            "id commit branch state status attempt runner tests-run tests-failed duration-ms "
            "repo waiting\n"
            "1 " +
                kCommit +
                " main queued - - - - - - - -\n"
                "2 " +
                kCommit +
                " feature/x running - 1 127.0.0.1:8900 - - - - -\n"
                "3 " +
                kCommit +
                " feature/x finished failed 2 127.0.0.1:8900 5 1 1234 - -\n"
                "4 " +
                kCommit +
                " feature/x finished timeout 2 127.0.0.1:8900 - - 1234 - -\n"
                "5 " +
                kCommit + " main queued - - - - - - tools waiting for a runner with py3.11\n");
  auto back = parse_jobs_reply(over_the_wire(reply, "jobs"));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, r);
}

TEST(Replies, PongsRoundTrip) {
  PongReply slots{PongReply::State::Slots, 0, 0, {{}, {12, 3}, {}, {7, 1}}};
  for (PongReply p : {PongReply{}, PongReply{PongReply::State::Idle, 0, 0},
                      PongReply{PongReply::State::Busy, 12, 3}, slots}) {
    auto back = parse_pong_reply(over_the_wire(to_reply(p), "ping"));
    ASSERT_TRUE(back.ok()) << back.error();
    EXPECT_EQ(*back, p);
  }
  EXPECT_EQ(serialize(serialize_reply(to_reply(PongReply{PongReply::State::Busy, 12, 3}))),
            "pong busy 12 3\n");
  EXPECT_EQ(serialize(serialize_reply(to_reply(PongReply{PongReply::State::Idle, 0, 0}))),
            "pong idle\n");
  EXPECT_EQ(serialize(serialize_reply(to_reply(slots))), "pong slots - 12/3 - 7/1\n");
}

TEST(Replies, StateWordsAreTheSchedulers) {
  for (const char* s : {"idle", "offered", "running", "busy", "unreachable"})
    EXPECT_TRUE(is_runner_state(s)) << s;
  for (const char* s : {"queued", "offered", "running", "finishing", "finished"})
    EXPECT_TRUE(is_job_state(s)) << s;
  EXPECT_FALSE(is_runner_state("queued"));
  EXPECT_FALSE(is_job_state("idle"));
  EXPECT_FALSE(is_job_state(""));
}

// The error of parsing `body` as `parse`, or "" if it parsed.
template <typename Parse>
std::string rejection(Parse parse, const std::string& body) {
  auto r = parse(body_reply(body));
  return r.ok() ? "" : r.error();
}

TEST(Replies, StatusRejectsWhatIsMalformedAndSkipsKeysItDoesNotKnow) {
  std::string good = to_reply(sample_status()).body;
  auto parse = [](const Reply& r) { return parse_status_reply(r); };
  EXPECT_EQ(rejection(parse, good), "");
  EXPECT_EQ(rejection(parse, good.substr(good.find('\n') + 1)), "status reply: no 'runners' line");
  EXPECT_EQ(rejection(parse, "runners 1\n" + good),
            "status reply, line 2: key 'runners' given twice");
  std::string many;
  for (int i = 0; i < 65; ++i) many += "later-counter-" + std::to_string(i) + " 1\n";
  EXPECT_EQ(rejection(parse, good + many), "status reply: more than 79 lines");
  EXPECT_EQ(rejection(parse, "runners 1\nrunners 2\n"),
            "status reply, line 2: key 'runners' given twice");
  EXPECT_EQ(rejection(parse, "runners x\n"),
            "status reply, line 1: 'runners' is not a number: 'x'");
  EXPECT_EQ(rejection(parse, "runners -1\n"),
            "status reply, line 1: 'runners' is not a number: '-1'");
  // A counter this version does not know (from a newer dispatcher) is skipped.
  auto with_new_key = parse_status_reply(Reply::ok_with_body(good + "jobs-exploded 2\n"));
  ASSERT_TRUE(with_new_key.ok()) << with_new_key.error();
  EXPECT_EQ(*with_new_key, sample_status());
  EXPECT_EQ(rejection(parse, "Frobs! 1\n"), "status reply, line 1: malformed key 'Frobs!'");
  EXPECT_EQ(rejection(parse, "runners\n"), "status reply, line 1: expected '<key> <value>'");
  EXPECT_EQ(rejection(parse, "runners 1"), "status reply: the body does not end with a newline");
  EXPECT_EQ(rejection(parse, "results-dir a\tb\n"),
            "status reply, line 1: results-dir holds control characters");
  EXPECT_EQ(parse_status_reply(Reply::err("no such thing")).error(),
            "status reply: ERR no such thing");
  EXPECT_EQ(parse_status_reply(Reply::ok({"3"})).error(), "status reply: expected OK with a body");
}

TEST(Replies, RunnersRejectMalformedRows) {
  auto parse = [](const Reply& r) { return parse_runners_reply(r); };
  const std::string header =
      "address state job attempt jobs-done last-seen-ms slots busy labels repos\n";
  EXPECT_EQ(rejection(parse, header + "127.0.0.1:1 idle - - 0 0 1 0 - default\n"), "");
  EXPECT_EQ(rejection(parse, ""), "runners reply, line 1: expected the header '" +
                                      header.substr(0, header.size() - 1) + "'");
  EXPECT_EQ(rejection(parse, "127.0.0.1:1 idle - - 0 0 1 0 - default\n").substr(0, 47),
            "runners reply, line 1: expected the header 'add");
  EXPECT_EQ(rejection(parse, header + "127.0.0.1:1 idle - - 0 0 1 0 -\n"),
            "runners reply, line 2: expected 10 words separated by single spaces");
  EXPECT_EQ(rejection(parse, header + "127.0.0.1:1 idle - - 0 0 1 0 - default x\n"),
            "runners reply, line 2: expected 10 words separated by single spaces");
  EXPECT_EQ(rejection(parse, header + "127.0.0.1:1  idle - - 0 0 1 0 - default\n"),
            "runners reply, line 2: expected 10 words separated by single spaces");
  EXPECT_EQ(rejection(parse, header + "127.0.0.1:1 sleepy - - 0 0 1 0 - default\n"),
            "runners reply, line 2: unknown runner state 'sleepy'");
  EXPECT_EQ(rejection(parse, header + "127.0.0.1:1 running 0 1 0 0 1 0 - default\n"),
            "runners reply, line 2: job must be '-' or a positive number");
  EXPECT_EQ(rejection(parse, header + "127.0.0.1:1 running 3 - 0 0 1 0 - default\n"),
            "runners reply, line 2: job and attempt must both be given or both be '-'");
  EXPECT_EQ(rejection(parse, header + "127.0.0.1:1 running 3 4294967296 0 0 1 0 - default\n"),
            "runners reply, line 2: attempt must be '-' or a positive number");
  EXPECT_EQ(
      rejection(parse, header + "127.0.0.1:1 idle - - 99999999999999999999 0 1 0 - default\n"),
      "runners reply, line 2: jobs-done is not a number");
  EXPECT_NE(
      rejection(parse, header + "nohost idle - - 0 0 1 0 - default\n").find("line 2: address: "),
      std::string::npos);
  auto line = [&](const std::string& tail) {
    return header + "127.0.0.1:1 running 3 1 0 0 " + tail + "\n";
  };
  EXPECT_EQ(rejection(parse, line("4 2 gpu,linux all")), "");
  EXPECT_EQ(rejection(parse, line("0 0 - default")),
            "runners reply, line 2: slots is not a number of slots");
  EXPECT_EQ(rejection(parse, line("65 0 - default")),
            "runners reply, line 2: slots is not a number of slots");
  EXPECT_EQ(rejection(parse, line("2 3 - default")),
            "runners reply, line 2: busy is not 0 to slots");
  EXPECT_EQ(rejection(parse, line("2 x - default")),
            "runners reply, line 2: busy is not 0 to slots");
  EXPECT_EQ(rejection(parse, line("1 0 -gpu default")).rfind("runners reply, line 2: labels: ", 0),
            0u);
  EXPECT_EQ(
      rejection(parse, line("1 0 gpu,,x default")).rfind("runners reply, line 2: labels: ", 0), 0u);
  EXPECT_EQ(rejection(parse, line("1 0 - some")),
            "runners reply, line 2: repos must be default, named or all");
}

TEST(Replies, JobsRejectMalformedRows) {
  auto parse = [](const Reply& r) { return parse_jobs_reply(r); };
  const std::string header =
      "id commit branch state status attempt runner tests-run tests-failed duration-ms repo "
      "waiting\n";
  auto row = [&](const std::string& rest) {
    return header + "1 " + kCommit + " main " + rest + " - -\n";
  };
  EXPECT_EQ(rejection(parse, row("queued - - - - - -")), "");
  EXPECT_EQ(rejection(parse, row("finished passed 1 127.0.0.1:2 3 0 10")), "");
  EXPECT_EQ(rejection(parse, row("lost - - - - - -")),
            "jobs reply, line 2: unknown job state 'lost'");
  EXPECT_EQ(rejection(parse, row("finished great 1 127.0.0.1:2 3 0 10")),
            "jobs reply, line 2: unknown status 'great'");
  EXPECT_EQ(rejection(parse, row("running passed 1 127.0.0.1:2 3 0 10")),
            "jobs reply, line 2: a status on a job that has not finished");
  EXPECT_EQ(rejection(parse, row("finished passed 1 127.0.0.1:2 3 0 -")),
            "jobs reply, line 2: a finished job without a duration");
  EXPECT_EQ(rejection(parse, row("queued - - - 3 - -")),
            "jobs reply, line 2: test counts or a duration on a job without a status");
  EXPECT_EQ(rejection(parse, row("finished passed 1 127.0.0.1:2 x 0 10")),
            "jobs reply, line 2: test counts must be numbers or '-'");
  EXPECT_EQ(rejection(parse, header + "1 " + kCommit + " main queued - - - - - - -\n"),
            "jobs reply, line 2: expected 12 fields separated by single spaces");
  EXPECT_EQ(rejection(parse, header + "1 " + kCommit + " main queued - - - - - - - \n"),
            "jobs reply, line 2: expected 12 fields separated by single spaces");
  EXPECT_EQ(rejection(parse, header + "0 " + kCommit + " main queued - - - - - - - -\n"),
            "jobs reply, line 2: id must be a positive number");
  EXPECT_NE(
      rejection(parse, header + "1 abc main queued - - - - - - - -\n").find("line 2: commit: "),
      std::string::npos);
  EXPECT_NE(rejection(parse, header + "1 " + kCommit + " -x queued - - - - - - - -\n")
                .find("line 2: branch: "),
            std::string::npos);
  EXPECT_EQ(rejection(parse, "1 " + kCommit + " main queued - - - - - - - -\n").substr(0, 41),
            "jobs reply, line 1: expected the header '");
  // The repository and the waiting reason: the rest of the line is the reason.
  auto queued = [&](const std::string& tail) {
    return header + "1 " + kCommit + " main queued - - - - - - " + tail + "\n";
  };
  auto parsed = parse_jobs_reply(body_reply(queued("tools waiting for a runner  with gpu")));
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed->jobs[0].repo, "tools");
  EXPECT_EQ(parsed->jobs[0].waiting, "waiting for a runner  with gpu");
  EXPECT_EQ(rejection(parse, queued("-bad -")).rfind("jobs reply, line 2: repo: ", 0), 0u);
  EXPECT_EQ(rejection(parse, queued("a/b -")).rfind("jobs reply, line 2: repo: ", 0), 0u);
  EXPECT_EQ(rejection(parse, queued(kCommit + " -")),
            "jobs reply, line 2: repo: repository name must not be a commit id");
  EXPECT_EQ(rejection(parse, queued("tools waiting\tfor")),
            "jobs reply, line 2: the waiting reason holds control characters");
}

TEST(Replies, BodiesAreBounded) {
  std::string body = "address state job attempt jobs-done last-seen-ms slots busy labels repos\n";
  const std::string line = "1.2.3.4:5 idle - - 0 0 1 0 - default\n";
  while (body.size() <= FrameLimits{}.max_body) body += line;
  EXPECT_EQ(parse_runners_reply(body_reply(body)).error(),
            "runners reply: body larger than a frame may be");
}

TEST(Replies, PongRejectsAnythingElse) {
  const std::string expected =
      "pong reply: expected 'pong', 'pong idle', 'pong busy <job> <attempt>' or 'pong slots "
      "<slot>...'";
  EXPECT_EQ(parse_pong_reply(Reply::pong({"busy"})).error(), expected);
  EXPECT_EQ(parse_pong_reply(Reply::pong({"idle", "1"})).error(), expected);
  EXPECT_EQ(parse_pong_reply(Reply::pong({"slots"})).error(), expected);
  std::vector<std::string> too_many(kMaxSlots + 2, "-");
  too_many[0] = "slots";
  EXPECT_EQ(parse_pong_reply(Reply::pong(too_many)).error(), expected);
  too_many.pop_back();
  EXPECT_TRUE(parse_pong_reply(Reply::pong(too_many)).ok());
  const std::string bad_slot = "pong reply: a slot must be '-' or '<job>/<attempt>'";
  for (std::string slot : {"3", "0/1", "3/0", "3/", "/1", "x/1", "3/1/2", "-1/1", "3/4294967296"})
    EXPECT_EQ(parse_pong_reply(Reply::pong({"slots", "-", slot})).error(), bad_slot) << slot;
  EXPECT_EQ(parse_pong_reply(Reply::pong({"busy", "0", "1"})).error(),
            "pong reply: job id must be a positive number");
  EXPECT_EQ(parse_pong_reply(Reply::pong({"busy", "1", "x"})).error(),
            "pong reply: attempt must be a positive number");
  EXPECT_EQ(parse_pong_reply(Reply::ok()).error(), "pong reply: expected 'pong'");
  EXPECT_EQ(parse_pong_reply(Reply::err("bad")).error(), "pong reply: ERR bad");
}

}  // namespace
}  // namespace ci
