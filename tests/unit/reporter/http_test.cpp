// The HTTP server of a real reporter following a fake feed: the JSON API's shapes and
// paging, log byte ranges, badges, metrics, token rules and the server's bounds.
#include <gtest/gtest.h>

#include <pugixml.hpp>
#include <regex>

#include "reporter_fixture.h"

namespace ci::reporter::test_peer {
namespace {

JobInfo done(JobId id, const std::string& commit, TestStatus status,
             const std::string& branch = "master") {
  JobInfo job = make_job(id, commit, branch, "finished", "Alice " + commit);
  job.status = status;
  job.attempt = 1;
  job.runner = "127.0.0.1:8900";
  job.duration_ms = 1500;
  job.tests_run = 2;
  job.tests_failed = status == TestStatus::Passed ? 0 : 1;
  return job;
}

using HttpTest = ReporterTest;

// The token as a query argument: '+', '/' and '=' escaped, as encodeURIComponent does.
std::string token_arg() {
  std::string out;
  for (char c : std::string(test::kTestToken)) {
    if (c == '+')
      out += "%2B";
    else if (c == '/')
      out += "%2F";
    else if (c == '=')
      out += "%3D";
    else
      out += c;
  }
  return out;
}

TEST_F(HttpTest, JobsArePagedNewestFirstWithEveryField) {
  start();
  feed.add(runner_event(EventKind::RunnerJoined, "127.0.0.1:8900"));
  for (JobId id = 1; id <= 5; ++id)
    feed.add(finished(
        done(id, "c" + std::to_string(id), id == 4 ? TestStatus::Failed : TestStatus::Passed,
             id % 2 ? "master" : "feature"),
        {test_case("t.a", id == 4 ? CaseOutcome::Failed : CaseOutcome::Passed)}));
  ASSERT_TRUE(jobs_listed(5));

  auto page = get_json("/api/jobs?limit=2");
  ASSERT_EQ(page["jobs"].size(), 2u);
  EXPECT_EQ(page["jobs"][0]["id"], 5);
  EXPECT_EQ(page["next_before"], 4);
  const auto& job = page["jobs"][0];
  for (const char* field :
       {"id",           "commit",      "branch",    "author",     "email",       "subject",
        "commit_time",  "state",       "status",    "attempt",    "runner",      "tests_run",
        "tests_failed", "duration_ms", "queued_ms", "started_ms", "finished_ms", "reason",
        "seq",          "log_size",    "repo",      "required",   "waiting"})
    EXPECT_TRUE(job.contains(field)) << field;
  EXPECT_EQ(job["author"], "Alice c5");
  auto next = get_json("/api/jobs?limit=2&before=4");
  EXPECT_EQ(next["jobs"][0]["id"], 3);
  EXPECT_EQ(get_json("/api/jobs?branch=feature")["jobs"].size(), 2u);
  EXPECT_EQ(get_json("/api/jobs?status=failed")["jobs"][0]["id"], 4);
  EXPECT_EQ(get("/api/jobs?limit=x").status, 400);

  EXPECT_EQ(get_json("/api/jobs/4")["status"], "failed");
  EXPECT_EQ(get("/api/jobs/99").status, 404);
  auto tests = get_json("/api/jobs/4/tests");
  EXPECT_EQ(tests["cases"][0]["broken_by"]["commit"], sha("c4"));
  EXPECT_EQ(get_json("/api/commits/" + sha("c3"))["jobs"][0]["id"], 3);
  EXPECT_EQ(get_json("/api/commits/" + sha("c3").substr(0, 8))["jobs"].size(), 1u);
  auto branches = get_json("/api/branches");
  ASSERT_EQ(branches.size(), 2u);
  EXPECT_EQ(branches[0]["name"], "feature");
  EXPECT_EQ(branches[0]["state"], "failing");
  EXPECT_EQ(branches[0]["since"]["commit"], sha("c4"));
  EXPECT_EQ(branches[1]["latest"]["id"], 5);
  EXPECT_EQ(get_json("/api/runners")[0]["address"], "127.0.0.1:8900");
  EXPECT_EQ(get_json("/api/tests/history?branch=feature&name=t.a")["runs"].size(), 2u);
}

TEST_F(HttpTest, JobsOfManyRepositoriesAreShownAndFilteredByRepository) {
  start();
  auto in_repo = [](JobInfo job, const std::string& repo) {
    job.repo = repo;
    return job;
  };
  // The default repository and a fork share commit c1; a library's job waits for gpu.
  feed.add(finished(done(1, "c1", TestStatus::Failed), {}));
  feed.add(finished(in_repo(done(2, "c1", TestStatus::Passed), "fork"), {}));
  feed.add(finished(in_repo(done(3, "c2", TestStatus::Passed, "feat/x"), "fork"), {}));
  JobInfo waiting = in_repo(make_job(4, "c3", "master", "queued"), "lib");
  waiting.required = {"gpu"};
  waiting.waiting = "waiting for a runner with gpu";
  feed.add(job_event(EventKind::JobQueued, waiting));
  ASSERT_TRUE(jobs_listed(4));

  auto ids = [&](const std::string& target) {
    std::vector<int> out;
    auto body = get_json(target);
    for (const auto& job : body["jobs"]) out.push_back(job["id"].get<int>());
    return out;
  };
  EXPECT_EQ(ids("/api/jobs?repo=fork"), (std::vector<int>{3, 2}));
  EXPECT_EQ(ids("/api/jobs?repo=-"), (std::vector<int>{1}));
  EXPECT_EQ(ids("/api/jobs?repo="), (std::vector<int>{1}));
  EXPECT_EQ(ids("/api/jobs?repo=fork&branch=master"), (std::vector<int>{2}));
  EXPECT_EQ(ids("/api/jobs?repo=nobody"), (std::vector<int>{}));
  EXPECT_EQ(get("/api/jobs?repo=..%2Fx").status, 400);
  EXPECT_EQ(get("/api/branches?repo=a%20b").status, 400);
  auto job = get_json("/api/jobs/4");
  EXPECT_EQ(job["repo"], "lib");
  EXPECT_EQ(job["required"], nlohmann::json::array({"gpu"}));
  EXPECT_EQ(job["waiting"], "waiting for a runner with gpu");
  EXPECT_EQ(get_json("/api/jobs/1")["repo"], "");
  EXPECT_EQ(get_json("/api/commits/" + sha("c1"))["jobs"].size(), 2u);
  EXPECT_EQ(get_json("/api/commits/" + sha("c1") + "?repo=fork")["jobs"][0]["id"], 2);

  EXPECT_NE(get("/metrics").body.find("tinyci_jobs_waiting{repo=\"lib\"} 1"), std::string::npos);

  // A runner with gpu joins: the same job queued again without a reason, updated.
  waiting.waiting = "";
  feed.add(job_event(EventKind::JobQueued, waiting));
  ASSERT_TRUE(test::wait_until([&] { return get_json("/api/jobs/4")["waiting"] == ""; }));
  EXPECT_EQ(get_json("/api/jobs?limit=500")["jobs"].size(), 4u);

  auto repos = get_json("/api/repos");
  ASSERT_EQ(repos.size(), 3u);
  EXPECT_EQ(repos[0]["name"], "");
  EXPECT_EQ(repos[0]["failed"], 1);
  EXPECT_EQ(repos[1]["name"], "fork");
  EXPECT_EQ(repos[1]["jobs"], 2);
  ASSERT_EQ(repos[1]["branches"].size(), 2u);
  EXPECT_EQ(repos[1]["branches"][0]["name"], "feat/x");
  EXPECT_EQ(repos[1]["branches"][0]["state"], "passing");
  EXPECT_EQ(repos[1]["branches"][1]["latest"]["id"], 2);
  EXPECT_EQ(repos[2]["name"], "lib");
  EXPECT_EQ(repos[2]["queued"], 1);
  EXPECT_EQ(repos[2]["branches"][0]["state"], "unknown");

  auto branches = get_json("/api/branches");
  ASSERT_EQ(branches.size(), 4u);
  EXPECT_EQ(branches[0]["repo"], "");
  EXPECT_EQ(branches[0]["state"], "failing");
  auto fork_branches = get_json("/api/branches?repo=fork");
  ASSERT_EQ(fork_branches.size(), 2u);
  EXPECT_EQ(fork_branches[1]["name"], "master");
  EXPECT_EQ(fork_branches[1]["state"], "passing");
  EXPECT_EQ(get_json("/api/branches?repo=-").size(), 1u);

  // Badges: the default repository's by path alone, a named one's with ?repo=.
  struct Case {
    std::string target, state, label;
  };
  for (const Case& c : {Case{"/badge/master.svg", "failing", "master"},
                        Case{"/badge/master.svg?repo=-", "failing", "master"},
                        Case{"/badge/master.svg?repo=fork", "passing", "fork master"},
                        Case{"/badge/feat/x.svg?repo=fork", "passing", "fork feat/x"},
                        Case{"/badge/feat/x.svg", "unknown", "feat/x"},
                        Case{"/badge/master.svg?repo=lib", "unknown", "lib master"}}) {
    HttpResult r = get(c.target);
    ASSERT_EQ(r.status, 200) << c.target;
    pugi::xml_document doc;
    ASSERT_TRUE(doc.load_string(r.body.c_str())) << r.body;
    EXPECT_EQ(std::string(doc.child("svg").child_value("title")), c.label + ": " + c.state)
        << c.target;
  }
  EXPECT_EQ(get("/badge/master.svg?repo=%2F").status, 400);

  HttpResult metrics = get("/metrics");
  EXPECT_NE(metrics.body.find("tinyci_queue_length_by_repo{repo=\"lib\"} 1"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("tinyci_jobs_waiting{repo=\"lib\"} 0"), std::string::npos)
      << metrics.body;
}

TEST_F(HttpTest, LogsAreReadByOffsetAndByRange) {
  start();
  feed.add(job_event(EventKind::JobStarted, make_job(1, "c1", "master", "running")));
  std::string log;
  for (int i = 0; i < 1000; ++i) log += static_cast<char>('a' + i % 26);
  feed.set_log(1, log, true);
  ASSERT_TRUE(jobs_listed(1));

  HttpResult r = get("/api/jobs/1/log?offset=10&max=5");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, log.substr(10, 5));
  EXPECT_EQ(r.headers["x-log-start"], "10");
  EXPECT_EQ(r.headers["x-log-total"], "1000");
  EXPECT_EQ(r.headers["x-log-done"], "1");

  r = get("/api/jobs/1/log", {"Range: bytes=100-199"});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, log.substr(100, 100));
  EXPECT_EQ(r.headers["content-range"], "bytes 100-199/1000");
  r = get("/api/jobs/1/log", {"Range: bytes=990-"});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, log.substr(990));
  EXPECT_EQ(get("/api/jobs/1/log", {"Range: bytes=1000-"}).status, 416);
  EXPECT_EQ(get("/api/jobs/1/log", {"Range: bytes=5-1,7-9"}).status, 416);
  EXPECT_EQ(get("/api/jobs/2/log").status, 502);  // the dispatcher knows no such job
}

TEST_F(HttpTest, BadgesAreWellFormedSvg) {
  start();
  feed.add(finished(done(1, "c1", TestStatus::Passed), {}));
  feed.add(finished(done(2, "c2", TestStatus::Failed, "feat/<x>&"), {}));
  ASSERT_TRUE(jobs_listed(2));
  struct Case {
    std::string target, state;
  };
  for (const Case& c :
       {Case{"/badge/master.svg", "passing"}, Case{"/badge/feat/%3Cx%3E%26.svg", "failing"},
        Case{"/badge/none.svg", "unknown"}}) {
    HttpResult r = get(c.target);
    ASSERT_EQ(r.status, 200) << c.target;
    EXPECT_EQ(r.headers["content-type"], "image/svg+xml");
    pugi::xml_document doc;
    ASSERT_TRUE(doc.load_string(r.body.c_str())) << r.body;
    EXPECT_STREQ(doc.document_element().name(), "svg");
    EXPECT_NE(r.body.find(c.state), std::string::npos) << r.body;
  }
}

TEST_F(HttpTest, MetricsAreWellFormedPrometheusText) {
  start();
  JobInfo started = make_job(1, "c1", "master", "running");
  started.started_ms = started.queued_ms + 250;
  feed.add(job_event(EventKind::JobStarted, started));
  feed.add(finished(done(1, "c1", TestStatus::Passed), {}));
  feed.add(job_event(EventKind::JobQueued, make_job(2, "c2", "master", "queued")));
  ASSERT_TRUE(jobs_listed(2));
  HttpResult r = get("/metrics");
  ASSERT_EQ(r.status, 200);
  std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.eE+\-]+(Inf)?$)");
  std::istringstream lines(r.body);
  size_t samples = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
    ++samples;
  }
  EXPECT_GT(samples, 10u);
  EXPECT_NE(r.body.find("tinyci_queue_length 1"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("tinyci_jobs_finished{status=\"passed\"} 1"), std::string::npos);
  EXPECT_NE(r.body.find("tinyci_dispatch_to_start_seconds_count 1"), std::string::npos);
  EXPECT_NE(r.body.find("tinyci_reporter_lag_events 0"), std::string::npos);
}

TEST_F(HttpTest, WithATokenTheApiNeedsIt) {
  start(test::kTestToken);
  feed.add(finished(done(1, "c1", TestStatus::Passed), {}));
  std::string bearer = std::string("Authorization: Bearer ") + test::kTestToken;
  ASSERT_TRUE(jobs_listed(1, {bearer}));
  for (const char* target :
       {"/api/jobs", "/api/jobs/1", "/metrics", "/badge/master.svg", "/api/events"}) {
    EXPECT_EQ(get(target).status, 401) << target;
    EXPECT_EQ(get(target, {"Authorization: Bearer wrong"}).status, 401) << target;
    std::string with_arg = std::string(target) + "?token=" + token_arg();
    // Only the event stream takes the token as an argument (EventSource sets no header).
    if (std::string(target) != "/api/events") {
      EXPECT_EQ(get(with_arg).status, 401) << target;
    }
  }
  EXPECT_EQ(get("/api/jobs/1", {bearer}).status, 200);
  EXPECT_EQ(get("/metrics", {bearer}).status, 200);
  SseReader stream(port, "/api/events?token=" + token_arg());
  ASSERT_TRUE(stream.wait_open());
  EXPECT_EQ(parse_http(stream.text()).status, 200);
  // The pages themselves hold no data: they load without it, and ask for it.
  EXPECT_EQ(get("/").status, 200);
  EXPECT_EQ(get("/jobs/1").status, 200);
}

TEST_F(HttpTest, NoPathReachesAFile) {
  start();
  for (const char* target :
       {"/../../etc/passwd", "/assets/../../../etc/passwd", "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/jobs/../../etc/passwd", "/assets/dashboard.html/..", "/etc/passwd", "/assets/",
        "/jobs/1/../../x"}) {
    HttpResult r = get(target);
    EXPECT_TRUE(r.status == 404 || r.status == 400) << target << " " << r.status;
    EXPECT_EQ(r.body.find("root:"), std::string::npos);
  }
  HttpResult page = get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<table id=\"jobs\">"), std::string::npos);
  EXPECT_EQ(get("/assets/common.js").headers["content-type"], "text/javascript; charset=utf-8");
  EXPECT_EQ(get("/assets/dashboard.html").status, 404);  // pages only by their routes
  HttpResult post =
      parse_http(test_peer::exchange(port, "POST /api/jobs HTTP/1.0\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_EQ(post.status, 405);
}

TEST_F(HttpTest, OversizedHeadersAreRefused) {
  start();
  std::string raw = "GET /api/jobs HTTP/1.0\r\nX-Big: " + std::string(100000, 'x') + "\r\n\r\n";
  HttpResult r = parse_http(test_peer::exchange(port, raw));
  EXPECT_NE(r.status, 200);
  if (r.status != 0) {
    EXPECT_GE(r.status, 400);
  }
  EXPECT_EQ(get("/api/jobs").status, 200);  // and the server goes on
}

TEST_F(HttpTest, AClientTooSlowToSendItsRequestIsClosed) {
  feed.start();
  ReporterOptions o = options();
  o.http.timeout = std::chrono::seconds(1);
  start_reporter(o);
  auto started = std::chrono::steady_clock::now();
  // Half a request, never finished: the server closes it once the timeout passes.
  std::string reply = test_peer::exchange(
      port, "GET /api/jobs HTTP/1.0\r\nX-Slow: ", std::chrono::milliseconds(10000));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  EXPECT_EQ(parse_http(reply).status, 0) << reply;
  EXPECT_EQ(get("/api/jobs").status, 200);
}

}  // namespace
}  // namespace ci::reporter::test_peer
