// The real ci-reporter over HTTP, following a real dispatcher after real runs of a
// real runner: every API endpoint's JSON, the log's byte ranges, broken-by over a
// branch's history, the event stream, badges, Prometheus metrics, the token rules and
// hostile clients.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>
#include <sstream>
#include <thread>

#include "ci/events.h"
#include "cluster.h"
#include "raw_peer.h"

namespace ci::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------
// HTTP with libcurl.

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

void curl_once() { static CurlGlobal global; }

struct HttpReply {
  long status = 0;                             // 0: no reply
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string error;  // libcurl's, when there is no reply
};

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

size_t on_body(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
    (*static_cast<std::map<std::string, std::string>*>(out))[lower(line.substr(0, colon))] = value;
  }
  return size * n;
}

// GET http://127.0.0.1:port<target>, the path sent as it is (no dot segments removed).
HttpReply http_get(uint16_t port, const std::string& target,
                   const std::vector<std::string>& headers = {}) {
  curl_once();
  HttpReply reply;
  CURL* curl = curl_easy_init();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + target;
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 15000L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply.headers);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  if (curl_easy_perform(curl) == CURLE_OK)
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  else
    reply.error = error;
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return reply;
}

// A 200 answer's JSON body; null (and a failure of the test) otherwise.
json get_json(uint16_t port, const std::string& target,
              const std::vector<std::string>& headers = {}) {
  HttpReply r = http_get(port, target, headers);
  EXPECT_EQ(r.status, 200) << target << ": " << r.body << r.error;
  EXPECT_EQ(r.headers["content-type"], "application/json") << target;
  json body = json::parse(r.body, nullptr, false);
  EXPECT_FALSE(body.is_discarded()) << target << ": " << r.body;
  return r.status == 200 && !body.is_discarded() ? body : json();
}

// ---------------------------------------------------------------------------------
// An event stream read by libcurl on a thread of its own.

struct SseEvent {
  std::string id, event, data;
};

class EventStream {
 public:
  EventStream(uint16_t port, const std::string& target,
              const std::vector<std::string>& headers = {}) {
    curl_once();
    url_ = "http://127.0.0.1:" + std::to_string(port) + target;
    for (const auto& h : headers) headers_ = curl_slist_append(headers_, h.c_str());
    headers_ = curl_slist_append(headers_, "Accept: text/event-stream");
    thread_ = std::thread([this] { read(); });
  }
  ~EventStream() {
    stop_ = true;
    thread_.join();
    curl_slist_free_all(headers_);
  }
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  // Waits for the reply's status (0: none came before `timeout`).
  long wait_status(std::chrono::milliseconds timeout = 10000ms) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return status_ != 0 || ended_; });
    return status_;
  }
  // Waits until `done` holds for the events so far; false if `timeout` passes first.
  bool wait_for(const std::function<bool(const std::vector<SseEvent>&)>& done,
                std::chrono::milliseconds timeout = 30000ms) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return done(parse(text_)) || ended_; }) &&
           done(parse(text_));
  }
  std::vector<SseEvent> events() {
    std::lock_guard lock(mutex_);
    return parse(text_);
  }
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  // The complete events of an event-stream body (comments and retry lines aside).
  static std::vector<SseEvent> parse(const std::string& text) {
    std::vector<SseEvent> out;
    size_t pos = 0;
    for (auto end = text.find("\n\n"); end != std::string::npos; end = text.find("\n\n", pos)) {
      std::istringstream block(text.substr(pos, end - pos));
      pos = end + 2;
      SseEvent e;
      for (std::string line; std::getline(block, line);) {
        if (line.rfind("id: ", 0) == 0) e.id = line.substr(4);
        if (line.rfind("event: ", 0) == 0) e.event = line.substr(7);
        if (line.rfind("data: ", 0) == 0) e.data = line.substr(6);
      }
      if (!e.event.empty()) out.push_back(std::move(e));
    }
    return out;
  }

  static size_t on_data(char* data, size_t size, size_t n, void* self) {
    auto* s = static_cast<EventStream*>(self);
    std::lock_guard lock(s->mutex_);
    if (s->status_ == 0) curl_easy_getinfo(s->curl_, CURLINFO_RESPONSE_CODE, &s->status_);
    s->text_.append(data, size * n);
    s->changed_.notify_all();
    return size * n;
  }
  static int on_progress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    return static_cast<EventStream*>(self)->stop_ ? 1 : 0;
  }

  void read() {
    curl_ = curl_easy_init();
    curl_easy_setopt(curl_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &on_data);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &on_progress);
    curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, this);
    curl_easy_perform(curl_);
    std::lock_guard lock(mutex_);
    if (status_ == 0) curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status_);
    ended_ = true;
    changed_.notify_all();
    curl_easy_cleanup(curl_);
  }

  std::string url_;
  curl_slist* headers_ = nullptr;
  CURL* curl_ = nullptr;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string text_;  // guarded by mutex_
  long status_ = 0;   // guarded by mutex_
  bool ended_ = false;
  std::thread thread_;  // last: it uses the members above
};

// ---------------------------------------------------------------------------------
// Raw requests, byte for byte, for what libcurl would not send.

struct RawAnswer {
  int status = 0;  // of the status line; 0: none (closed without an answer)
  std::string text;
};

RawAnswer raw_exchange(uint16_t port, const std::string& bytes) {
  RawAnswer answer;
  auto socket = RawSocket::connect(port);
  if (!socket) return answer;
  socket->send(bytes);
  socket->closes_without_sending(10000ms, &answer.text);
  if (answer.text.rfind("HTTP/1.", 0) == 0 && answer.text.size() >= 12)
    answer.status = std::atoi(answer.text.substr(9, 3).c_str());
  return answer;
}

// ---------------------------------------------------------------------------------
// The repository and the cluster.

// The suite the runner runs (sh ci.sh): two cases, suite.alpha and suite.beta, each
// failing when a file broken-<name> is in the commit; a JUnit report in
// $CI_REPORTS_DIR (the cases), a hundred lines of output for the log, and unittest's
// summary lines (the counts: a summary, when there is one, gives them rather than the
// cases).
constexpr char kSuite[] = R"SH(#!/bin/sh
i=0
while [ $i -lt 100 ]; do echo "log line $i of job $CI_JOB_ID"; i=$((i + 1)); done
out="$CI_REPORTS_DIR/report.xml"
fails=0
echo '<?xml version="1.0"?>' > "$out"
echo '<testsuite name="suite">' >> "$out"
for t in alpha beta; do
  if [ -e "broken-$t" ]; then
    echo "<testcase classname=\"suite\" name=\"$t\" time=\"0.003\"><failure message=\"$t is broken\">$t failed</failure></testcase>" >> "$out"
    fails=$((fails + 1))
  else
    echo "<testcase classname=\"suite\" name=\"$t\" time=\"0.001\"/>" >> "$out"
  fi
done
echo '</testsuite>' >> "$out"
echo "Ran 2 tests in 0.004s"
echo
if [ $fails -eq 0 ]; then echo OK; else echo "FAILED (failures=$fails)"; exit 1; fi
)SH";

// Writes (content) or removes (nullopt) files and commits all as `author`.
std::string commit_as(const std::string& repo, const std::string& author,
                      const std::string& subject,
                      const std::map<std::string, std::optional<std::string>>& files) {
  for (const auto& [name, content] : files) {
    if (content)
      std::ofstream(repo + "/" + name, std::ios::binary) << *content;
    else
      fs::remove(repo + "/" + name);
  }
  git(repo, {"add", "-A"});
  std::string email = lower(author.substr(0, author.find(' '))) + "@example.com";
  git(repo,
      {"commit", "-q", "--allow-empty", "--author=" + author + " <" + email + ">", "-m", subject});
  return head_commit(repo);
}

// The commit's author, email, subject and time, as the observer would send them.
CommitInfo info_of(const std::string& repo, const std::string& commit) {
  std::istringstream lines(git(repo, {"log", "-1", "--format=%an%n%ae%n%s%n%at", commit}));
  CommitInfo info;
  std::string time;
  std::getline(lines, info.author);
  std::getline(lines, info.email);
  std::getline(lines, info.subject);
  std::getline(lines, time);
  info.time = std::stoll(time);
  return info;
}

JobId dispatch(Cluster& c, const std::string& commit, const std::string& branch) {
  auto reply =
      c.ask(DispatchRequest{commit, branch, serialize_commit_info(info_of(c.master(), commit))});
  EXPECT_TRUE(reply.ok() && reply->kind == Reply::Kind::Ok && reply->args.size() == 1)
      << (reply ? reply->reason() : reply.error());
  return reply.ok() && reply->args.size() == 1 ? std::stoull(reply->args[0]) : 0;
}

// The job as the reporter shows it once it has finished there; null if it does not.
json wait_finished(Cluster& c, JobId id) {
  json job;
  bool done = wait_until(
      [&] {
        HttpReply r = http_get(c.http_port(), "/api/jobs/" + std::to_string(id));
        if (r.status != 200) return false;
        job = json::parse(r.body, nullptr, false);
        return !job.is_discarded() && job["state"] == "finished";
      },
      60000ms);
  EXPECT_TRUE(done) << "job " << id << " not finished in the reporter\n"
                    << c.dispatcher().log() << c.runner(0).log() << c.reporter().log();
  return done ? job : json();
}

// The master repository with the suite, its first commit (the suite) by Alice.
std::string make_repo(Cluster& c) {
  make_master_repo(c.master());
  return commit_as(c.master(), "Alice Example", "Add the suite", {{"ci.sh", kSuite}});
}

// Dispatcher, one runner of the suite, and the reporter; the runner's address.
std::string start_cluster(Cluster& c, const std::vector<std::string>& reporter_extra = {}) {
  c.start_dispatcher();
  c.start_runner({"--test-command", "sh ci.sh"});
  EXPECT_TRUE(c.wait_runners(1)) << c.dispatcher().log();
  c.start_reporter(reporter_extra);
  return "127.0.0.1:" + std::to_string(c.runner(0).wait_listening());
}

std::string job_path(JobId id, const std::string& rest = "") {
  return "/api/jobs/" + std::to_string(id) + rest;
}

// Every field of a job as docs/API.md shows it, with its type.
void expect_job_shape(const json& job) {
  ASSERT_TRUE(job.is_object()) << job;
  for (const char* field :
       {"id", "commit_time", "attempt", "tests_run", "tests_failed", "duration_ms", "queued_ms",
        "started_ms", "finished_ms", "seq", "log_size"})
    EXPECT_TRUE(job.contains(field) && job[field].is_number_integer()) << field << " in " << job;
  for (const char* field : {"commit", "branch", "author", "email", "subject", "state", "runner",
                            "reason", "repo", "waiting"})
    EXPECT_TRUE(job.contains(field) && job[field].is_string()) << field << " in " << job;
  EXPECT_TRUE(job.contains("required") && job["required"].is_array()) << job;
  // The one repository of these tests is the default one.
  EXPECT_EQ(job["repo"], "") << job;
  EXPECT_TRUE(job.contains("status") && (job["status"].is_string() || job["status"].is_null()))
      << job;
  EXPECT_EQ(job.size(), 23u) << job;
}

// ---------------------------------------------------------------------------------

TEST(ReporterHttp, EveryEndpointAfterAPassingAndAFailingRun) {
  Cluster c;
  std::string good = make_repo(c);
  std::string bad = commit_as(c.master(), "Bob Breaker", "Break beta", {{"broken-beta", "x"}});
  git(c.master(), {"checkout", "-q", "-b", "feature/x", good});
  std::string side = commit_as(c.master(), "Carol Side", "A side change", {{"side", "y"}});
  std::string runner = start_cluster(c);
  uint16_t port = c.http_port();

  JobId good_job = dispatch(c, good, "master");
  JobId bad_job = dispatch(c, bad, "master");
  JobId side_job = dispatch(c, side, "feature/x");
  json bad_seen = wait_finished(c, bad_job);
  json good_seen = wait_finished(c, good_job);
  json side_seen = wait_finished(c, side_job);
  ASSERT_FALSE(bad_seen.is_null() || good_seen.is_null() || side_seen.is_null());

  // /api/jobs/{id}: every field, with the commit's details and the run's numbers.
  json job = get_json(port, job_path(bad_job));
  expect_job_shape(job);
  CommitInfo info = info_of(c.master(), bad);
  EXPECT_EQ(job["id"], bad_job);
  EXPECT_EQ(job["commit"], bad);
  EXPECT_EQ(job["branch"], "master");
  EXPECT_EQ(job["author"], "Bob Breaker");
  EXPECT_EQ(job["email"], "bob@example.com");
  EXPECT_EQ(job["subject"], "Break beta");
  EXPECT_EQ(job["commit_time"], info.time);
  EXPECT_EQ(job["state"], "finished");
  EXPECT_EQ(job["status"], "failed");
  EXPECT_EQ(job["attempt"], 1);
  EXPECT_EQ(job["runner"], runner);
  EXPECT_EQ(job["tests_run"], 2);
  EXPECT_EQ(job["tests_failed"], 1);
  EXPECT_EQ(job["reason"], "");
  EXPECT_GT(job["queued_ms"].get<int64_t>(), 0);
  EXPECT_LE(job["queued_ms"].get<int64_t>(), job["started_ms"].get<int64_t>());
  EXPECT_LE(job["started_ms"].get<int64_t>(), job["finished_ms"].get<int64_t>());
  EXPECT_GT(job["seq"].get<int64_t>(), 0);
  json passed = get_json(port, job_path(good_job));
  EXPECT_EQ(passed["status"], "passed");
  EXPECT_EQ(passed["tests_failed"], 0);
  EXPECT_EQ(passed["author"], "Alice Example");
  EXPECT_EQ(http_get(port, job_path(999)).status, 404);
  EXPECT_EQ(http_get(port, "/api/jobs/abc").status, 404);

  // /api/jobs: newest first, paged by next_before to a last page that says null.
  std::vector<JobId> paged;
  std::string target = "/api/jobs?limit=1";
  for (int page = 0; page < 5; ++page) {
    json body = get_json(port, target);
    ASSERT_TRUE(body.contains("jobs") && body["jobs"].is_array()) << body;
    ASSERT_TRUE(body.contains("next_before")) << body;
    for (const auto& j : body["jobs"]) {
      expect_job_shape(j);
      paged.push_back(j["id"].get<JobId>());
    }
    if (body["next_before"].is_null()) break;
    EXPECT_EQ(body["jobs"].size(), 1u);
    EXPECT_EQ(body["next_before"], paged.back());
    target = "/api/jobs?limit=1&before=" + std::to_string(body["next_before"].get<JobId>());
  }
  EXPECT_EQ(paged, (std::vector<JobId>{side_job, bad_job, good_job}));
  json all = get_json(port, "/api/jobs");
  EXPECT_EQ(all["jobs"].size(), 3u);
  EXPECT_TRUE(all["next_before"].is_null());
  auto ids = [&](const std::string& query) {
    std::vector<JobId> out;
    json body = get_json(port, "/api/jobs?" + query);
    for (const auto& j : body["jobs"]) out.push_back(j["id"].get<JobId>());
    return out;
  };
  EXPECT_EQ(ids("branch=master"), (std::vector<JobId>{bad_job, good_job}));
  EXPECT_EQ(ids("branch=feature%2Fx"), std::vector<JobId>{side_job});
  EXPECT_EQ(ids("status=failed"), std::vector<JobId>{bad_job});
  EXPECT_EQ(ids("status=passed"), (std::vector<JobId>{side_job, good_job}));
  EXPECT_EQ(ids("status=finished"), (std::vector<JobId>{side_job, bad_job, good_job}));
  EXPECT_EQ(ids("branch=feature%2Fx&status=failed"), std::vector<JobId>{});
  EXPECT_EQ(ids("branch=nowhere"), std::vector<JobId>{});
  EXPECT_EQ(http_get(port, "/api/jobs?limit=x").status, 400);

  // /api/jobs/{id}/log: the dispatcher's log, whole, by offset and by range.
  auto logread = c.ask(LogReadRequest{bad_job, 0, 0, kMaxLogRead});
  ASSERT_TRUE(logread.ok() && logread->kind == Reply::Kind::Ok);
  const std::string log = logread->body;
  ASSERT_GT(log.size(), 1000u);
  EXPECT_NE(log.find("log line 99 of job " + std::to_string(bad_job)), std::string::npos) << log;
  std::string total = std::to_string(log.size());
  HttpReply whole = http_get(port, job_path(bad_job, "/log"));
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body, log);
  EXPECT_EQ(whole.headers["x-log-start"], "0");
  EXPECT_EQ(whole.headers["x-log-total"], total);
  EXPECT_EQ(whole.headers["x-log-done"], "1");
  EXPECT_EQ(whole.headers["content-type"], "text/plain; charset=utf-8");
  HttpReply by_offset = http_get(port, job_path(bad_job, "/log?offset=100&max=50"));
  EXPECT_EQ(by_offset.status, 200);
  EXPECT_EQ(by_offset.body, log.substr(100, 50));
  EXPECT_EQ(by_offset.headers["x-log-start"], "100");
  HttpReply ranged = http_get(port, job_path(bad_job, "/log"), {"Range: bytes=100-199"});
  EXPECT_EQ(ranged.status, 206);
  EXPECT_EQ(ranged.body, log.substr(100, 100));
  EXPECT_EQ(ranged.headers["content-range"], "bytes 100-199/" + total);
  HttpReply tail = http_get(port, job_path(bad_job, "/log"), {"Range: bytes=1000-"});
  EXPECT_EQ(tail.status, 206);
  EXPECT_EQ(tail.body, log.substr(1000));
  EXPECT_EQ(tail.headers["content-range"],
            "bytes 1000-" + std::to_string(log.size() - 1) + "/" + total);
  HttpReply past = http_get(port, job_path(bad_job, "/log"), {"Range: bytes=" + total + "-"});
  EXPECT_EQ(past.status, 416);
  EXPECT_EQ(past.headers["content-range"], "bytes */" + total);
  EXPECT_EQ(http_get(port, job_path(bad_job, "/log"), {"Range: bytes=9-3"}).status, 416);
  EXPECT_EQ(http_get(port, job_path(bad_job, "/log"), {"Range: bytes=0-1,5-9"}).status, 416);
  EXPECT_EQ(http_get(port, job_path(bad_job, "/log?offset=x")).status, 400);
  EXPECT_EQ(http_get(port, job_path(999, "/log")).status, 502);
  // The job's log_size comes to the log's size (from the job.log events).
  EXPECT_TRUE(wait_until(
      [&] { return get_json(port, job_path(bad_job))["log_size"] == log.size(); }, 10000ms))
      << get_json(port, job_path(bad_job));

  // /api/jobs/{id}/tests: failures first, with what broke them.
  json tests = get_json(port, job_path(bad_job, "/tests"));
  EXPECT_EQ(tests["job"], bad_job);
  EXPECT_EQ(tests["attempt"], 1);
  ASSERT_TRUE(tests["cases"].is_array() && tests["cases"].size() == 2u) << tests;
  const json& beta = tests["cases"][0];
  EXPECT_EQ(beta["name"], "suite.beta");
  EXPECT_EQ(beta["outcome"], "failed");
  EXPECT_TRUE(beta["ms"].is_number_integer()) << beta;
  EXPECT_NE(beta["message"].get<std::string>().find("beta is broken"), std::string::npos) << beta;
  EXPECT_EQ(beta["flaky"], false);
  EXPECT_EQ(beta["broken_by"], (json{{"job", bad_job},
                                     {"commit", bad},
                                     {"author", "Bob Breaker"},
                                     {"subject", "Break beta"},
                                     {"commits_ago", 0}}));
  const json& alpha = tests["cases"][1];
  EXPECT_EQ(alpha["name"], "suite.alpha");
  EXPECT_EQ(alpha["outcome"], "passed");
  EXPECT_EQ(alpha["message"], "");
  EXPECT_FALSE(alpha.contains("broken_by")) << alpha;
  json good_tests = get_json(port, job_path(good_job, "/tests"));
  ASSERT_EQ(good_tests["cases"].size(), 2u) << good_tests;
  for (const auto& test_case : good_tests["cases"]) EXPECT_EQ(test_case["outcome"], "passed");
  EXPECT_EQ(http_get(port, job_path(999, "/tests")).status, 404);

  // /api/commits/{sha}: by the full id and by a prefix.
  json commit = get_json(port, "/api/commits/" + bad);
  EXPECT_EQ(commit["commit"], bad);
  ASSERT_EQ(commit["jobs"].size(), 1u) << commit;
  expect_job_shape(commit["jobs"][0]);
  EXPECT_EQ(commit["jobs"][0]["id"], bad_job);
  EXPECT_EQ(get_json(port, "/api/commits/" + good.substr(0, 7))["jobs"][0]["id"], good_job);
  EXPECT_EQ(get_json(port, "/api/commits/" + std::string(40, '0'))["jobs"], json::array());

  // /api/branches: by name, each with its state since the job that set it.
  json branches = get_json(port, "/api/branches");
  ASSERT_TRUE(branches.is_array() && branches.size() == 2u) << branches;
  EXPECT_EQ(branches[0]["name"], "feature/x");
  EXPECT_EQ(branches[0]["state"], "passing");
  EXPECT_EQ(branches[0]["since"],
            (json{{"job", side_job}, {"commit", side}, {"author", "Carol Side"}}));
  EXPECT_EQ(branches[0]["latest"]["id"], side_job);
  EXPECT_EQ(branches[1]["name"], "master");
  EXPECT_EQ(branches[1]["state"], "failing");
  EXPECT_EQ(branches[1]["since"],
            (json{{"job", bad_job}, {"commit", bad}, {"author", "Bob Breaker"}}));
  expect_job_shape(branches[1]["latest"]);
  EXPECT_EQ(branches[1]["latest"]["id"], bad_job);

  // /api/runners: the one runner, idle again.
  json runners = get_json(port, "/api/runners");
  ASSERT_TRUE(runners.is_array() && runners.size() == 1u) << runners;
  EXPECT_EQ(runners[0]["address"], runner);
  EXPECT_TRUE(wait_until([&] { return get_json(port, "/api/runners")[0]["state"] == "idle"; }));
  runners = get_json(port, "/api/runners");
  EXPECT_TRUE(runners[0]["job"].is_null()) << runners;
  EXPECT_GT(runners[0]["joined_ms"].get<int64_t>(), 0);
  EXPECT_EQ(runners[0]["left_ms"], 0);

  // Errors are JSON; nothing but GET and HEAD.
  HttpReply missing = http_get(port, "/api/nothing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(json::parse(missing.body, nullptr, false).contains("error")) << missing.body;
  EXPECT_EQ(raw_exchange(port, "DELETE /api/jobs HTTP/1.0\r\n\r\n").status, 405);
}

TEST(ReporterHttp, BrokenByNamesTheCommitThatBrokeATestUntilItPassesAgain) {
  Cluster c;
  make_repo(c);
  const std::string& repo = c.master();
  git(repo, {"checkout", "-q", "-b", "topic"});
  std::vector<std::string> commits;  // on topic, oldest first
  commits.push_back(commit_as(repo, "Carol Side", "Fine one", {{"one", "1"}}));
  commits.push_back(commit_as(repo, "Bob Breaker", "Break alpha", {{"broken-alpha", "x"}}));
  for (int i = 0; i < 3; ++i)
    commits.push_back(commit_as(repo, "Carol Side", "Still broken " + std::to_string(i),
                                {{"n", std::to_string(i)}}));
  commits.push_back(commit_as(repo, "Dan Fixer", "Fix alpha", {{"broken-alpha", std::nullopt}}));
  commits.push_back(commit_as(repo, "Eve Again", "Break alpha again", {{"broken-alpha", "y"}}));
  start_cluster(c);
  uint16_t port = c.http_port();

  std::vector<JobId> jobs;
  for (const auto& commit : commits) jobs.push_back(dispatch(c, commit, "topic"));
  for (JobId id : jobs) ASSERT_FALSE(wait_finished(c, id).is_null());

  auto alpha_of = [&](JobId id) {
    json tests = get_json(port, job_path(id, "/tests"));
    for (const auto& test_case : tests["cases"])
      if (test_case["name"] == "suite.alpha") return test_case;
    ADD_FAILURE() << "no suite.alpha in " << tests;
    return json();
  };
  EXPECT_EQ(alpha_of(jobs[0])["outcome"], "passed");
  // Broken at commits[1] and failing for three more commits: each names commits[1].
  for (size_t i = 1; i <= 4; ++i) {
    json alpha = alpha_of(jobs[i]);
    EXPECT_EQ(alpha["outcome"], "failed") << i;
    EXPECT_EQ(alpha["broken_by"], (json{{"job", jobs[1]},
                                        {"commit", commits[1]},
                                        {"author", "Bob Breaker"},
                                        {"subject", "Break alpha"},
                                        {"commits_ago", i - 1}}))
        << i;
    EXPECT_EQ(get_json(port, job_path(jobs[i]))["status"], "failed") << i;
  }
  // Passing again clears it; a new failure is broken by its own commit.
  json fixed = alpha_of(jobs[5]);
  EXPECT_EQ(fixed["outcome"], "passed");
  EXPECT_FALSE(fixed.contains("broken_by")) << fixed;
  json again = alpha_of(jobs[6]);
  EXPECT_EQ(again["outcome"], "failed");
  EXPECT_EQ(again["broken_by"]["commit"], commits[6]);
  EXPECT_EQ(again["broken_by"]["author"], "Eve Again");
  EXPECT_EQ(again["broken_by"]["commits_ago"], 0);
  // beta never failed.
  for (JobId id : jobs) {
    json tests = get_json(port, job_path(id, "/tests"));
    for (const auto& test_case : tests["cases"]) {
      if (test_case["name"] == "suite.beta") {
        EXPECT_EQ(test_case["outcome"], "passed") << id;
      }
    }
  }

  // The branch is failing since the second break; the test's history says it all.
  json branches = get_json(port, "/api/branches");
  ASSERT_EQ(branches.size(), 1u) << branches;
  EXPECT_EQ(branches[0]["state"], "failing");
  EXPECT_EQ(branches[0]["since"]["commit"], commits[6]);
  json history = get_json(port, "/api/tests/history?branch=topic&name=suite.alpha");
  std::vector<std::string> outcomes;
  for (const auto& run : history["runs"]) outcomes.push_back(run["outcome"]);
  EXPECT_EQ(outcomes, (std::vector<std::string>{"failed", "passed", "failed", "failed", "failed",
                                                "failed", "passed"}));
}

TEST(ReporterHttp, EventStreamSendsEachJobsEventsInSeqOrderWithIds) {
  Cluster c;
  std::string good = make_repo(c);
  std::string bad = commit_as(c.master(), "Bob Breaker", "Break beta", {{"broken-beta", "x"}});
  std::string runner = start_cluster(c);
  uint16_t port = c.http_port();
  // The reporter has caught up with the runner's joining before the stream opens.
  ASSERT_TRUE(wait_until([&] { return get_json(port, "/api/runners").size() == 1; }))
      << c.reporter().log();

  EventStream stream(port, "/api/events");
  ASSERT_EQ(stream.wait_status(), 200) << stream.text();
  JobId good_job = dispatch(c, good, "master");
  JobId bad_job = dispatch(c, bad, "master");
  auto finished = [&](const std::vector<SseEvent>& events) {
    size_t n = 0;
    for (const auto& e : events) n += e.event == "job.finished";
    return n == 2;
  };
  ASSERT_TRUE(stream.wait_for(finished, 60000ms)) << stream.text() << c.reporter().log();

  std::vector<SseEvent> events = stream.events();
  uint64_t previous = 0;
  std::map<JobId, std::vector<std::string>> by_job;  // each job's event kinds, in order
  for (const auto& e : events) {
    ASSERT_FALSE(e.id.empty()) << e.event;
    uint64_t seq = std::stoull(e.id);
    EXPECT_GT(seq, previous) << stream.text();
    previous = seq;
    json data = json::parse(e.data, nullptr, false);
    ASSERT_FALSE(data.is_discarded()) << e.data;
    EXPECT_EQ(data["seq"], seq);
    EXPECT_EQ(data["kind"], e.event);
    EXPECT_TRUE(data["ms"].is_number_integer()) << e.data;
    ASSERT_TRUE(data.contains("job")) << e.data;  // only jobs' events after the runner joined
    JobId id = data["job"]["id"].get<JobId>();
    by_job[id].push_back(e.event);
    if (e.event == "job.log") {
      EXPECT_EQ(data["attempt"], 1);
      EXPECT_TRUE(data["size"].is_number_integer()) << e.data;
    } else {
      expect_job_shape(data["job"]);
    }
    if (e.event == "job.finished") {
      EXPECT_EQ(data["job"]["status"], id == good_job ? "passed" : "failed");
    }
    if (e.event == "job.started") {
      EXPECT_EQ(data["job"]["runner"], runner);
    }
  }
  EXPECT_EQ(by_job.size(), 2u);
  for (JobId id : {good_job, bad_job}) {
    const auto& kinds = by_job[id];
    auto at = [&](const std::string& kind) {
      return std::find(kinds.begin(), kinds.end(), kind) - kinds.begin();
    };
    EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "job.queued"), 1) << id;
    EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "job.started"), 1) << id;
    EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "job.finished"), 1) << id;
    EXPECT_LT(at("job.queued"), at("job.started")) << id;
    EXPECT_LT(at("job.started"), at("job.finished")) << id;
    // Nothing but its log after its end: the runner sends the results once the
    // dispatcher has taken the last lines of the log, or after half a second when it is
    // slow (a busy machine, a sanitizer), and then a job.log event may follow them.
    for (size_t i = at("job.finished") + 1; i < kinds.size(); ++i)
      EXPECT_EQ(kinds[i], "job.log") << id;
  }

  // A client coming back with Last-Event-ID is sent what came after it, the same events
  // (and any that came since).
  EventStream resumed(port, "/api/events", {"Last-Event-ID: " + events[0].id});
  ASSERT_TRUE(resumed.wait_for(
      [&](const std::vector<SseEvent>& got) { return got.size() >= events.size() - 1; }, 10000ms))
      << resumed.text();
  std::vector<SseEvent> again = resumed.events();
  ASSERT_GE(again.size(), events.size() - 1) << resumed.text();
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(again[i].id, events[i + 1].id);
    EXPECT_EQ(again[i].data, events[i + 1].data);
  }
}

// The badge of `branch`: its status, and the text of its parsed SVG.
struct Badge {
  long status = 0;
  std::string content_type, root, texts, title;
};
Badge badge_of(uint16_t port, const std::string& branch) {
  HttpReply r = http_get(port, "/badge/" + branch + ".svg");
  Badge badge{r.status, r.headers["content-type"], "", "", ""};
  pugi::xml_document svg;
  pugi::xml_parse_result parsed = svg.load_string(r.body.c_str());
  EXPECT_TRUE(parsed) << parsed.description() << "\n" << r.body;
  pugi::xml_node root = svg.document_element();
  badge.root = root.name();
  for (pugi::xpath_node text : root.select_nodes("//text"))
    badge.texts += std::string(text.node().child_value()) + "|";
  badge.title = root.child("title").child_value();
  return badge;
}

// Whether expat (Python's XML parser, strict about UTF-8) takes `text` as a document.
bool well_formed(const std::string& text) {
  TempDir dir;
  std::string file = dir / "badge.svg";
  std::ofstream(file, std::ios::binary) << text;
  CommandSpec spec;
  spec.argv = {"/usr/bin/python3", "-c",
               "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])", file};
  spec.env = current_environment();
  spec.timeout = 30000ms;
  auto r = run_command(spec);
  EXPECT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->output : "") << "\n" << text;
  return r.ok() && r->exit_code == 0;
}

TEST(ReporterHttp, BadgesAreSvgSayingWhatTheBranchIs) {
  Cluster c;
  std::string good = make_repo(c);
  git(c.master(), {"checkout", "-q", "-b", "feature/x"});
  std::string bad = commit_as(c.master(), "Bob Breaker", "Break beta", {{"broken-beta", "x"}});
  start_cluster(c);
  uint16_t port = c.http_port();
  ASSERT_FALSE(wait_finished(c, dispatch(c, good, "master")).is_null());
  ASSERT_FALSE(wait_finished(c, dispatch(c, bad, "feature/x")).is_null());

  Badge master = badge_of(port, "master");
  EXPECT_EQ(master.status, 200);
  EXPECT_EQ(master.content_type, "image/svg+xml");
  EXPECT_EQ(master.root, "svg");
  EXPECT_EQ(master.texts, "master|passing|");
  EXPECT_EQ(master.title, "master: passing");
  Badge feature = badge_of(port, "feature/x");
  EXPECT_EQ(feature.status, 200);
  EXPECT_EQ(feature.root, "svg");
  EXPECT_EQ(feature.texts, "feature/x|failing|");
  // A branch without a job: a grey "unknown", not an error.
  Badge unknown = badge_of(port, "nowhere");
  EXPECT_EQ(unknown.status, 200);
  EXPECT_EQ(unknown.root, "svg");
  EXPECT_EQ(unknown.texts, "nowhere|unknown|");
  // A name full of markup is escaped, and a long one shortened: still one valid SVG.
  Badge markup = badge_of(port, "a%22%26%3C%3E%27b");
  EXPECT_EQ(markup.status, 200);
  EXPECT_EQ(markup.root, "svg");
  EXPECT_EQ(markup.texts, "a\"&<>'b|unknown|");
  std::string quotes;
  for (int i = 0; i < 70; ++i) quotes += "%22";
  Badge all_quotes = badge_of(port, quotes);
  EXPECT_EQ(all_quotes.status, 200);
  EXPECT_EQ(all_quotes.root, "svg");
  EXPECT_EQ(all_quotes.texts, std::string(64, '"') + "|unknown|");
  // A long name cut to fit is not cut inside a character: an XML parser that checks
  // the encoding (expat) takes the badge too.
  std::string long_name = std::string(63, 'a') + "%C3%A9";
  EXPECT_TRUE(well_formed(http_get(port, "/badge/" + long_name + ".svg").body));
  EXPECT_EQ(http_get(port, "/badge/.svg").status, 404);
}

// The metric families of a Prometheus text body, read by the Python client's parser:
// {name: {"type": t, "samples": [{"name", "labels", "value"}]}}.
json parse_metrics(const std::string& text) {
  TempDir dir;
  std::string file = dir / "metrics.txt";
  std::ofstream(file, std::ios::binary) << text;
  const char* script = R"(import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    out[family.name] = {"type": family.type, "samples": [
        {"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples]}
print(json.dumps(out))
)";
  CommandSpec spec;
  spec.argv = {"/usr/bin/python3", "-c", script, file};
  spec.env = current_environment();
  spec.timeout = 30000ms;
  auto r = run_command(spec);
  EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->output : r.error()) << "\n" << text;
  json out = r.ok() ? json::parse(r->output, nullptr, false) : json();
  EXPECT_TRUE(out.is_object()) << (r.ok() ? r->output : "");
  return out.is_object() ? out : json::object();
}

// The value of the family's sample `name` with `labels`; -1 if there is none.
double sample(const json& families, const std::string& family, const std::string& name,
              const json& labels = json::object()) {
  if (!families.contains(family)) return -1;
  for (const auto& s : families[family]["samples"])
    if (s["name"] == name && s["labels"] == labels) return s["value"].get<double>();
  return -1;
}

TEST(ReporterHttp, MetricsAreValidPrometheusTextWithTheFamiliesNamed) {
  Cluster c;
  std::string good = make_repo(c);
  std::string bad = commit_as(c.master(), "Bob Breaker", "Break beta", {{"broken-beta", "x"}});
  start_cluster(c);
  uint16_t port = c.http_port();
  ASSERT_FALSE(wait_finished(c, dispatch(c, good, "master")).is_null());
  ASSERT_FALSE(wait_finished(c, dispatch(c, bad, "master")).is_null());
  ASSERT_TRUE(wait_until([&] { return get_json(port, "/api/runners")[0]["state"] == "idle"; }));

  HttpReply r = http_get(port, "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  json families = parse_metrics(r.body);
  const std::map<std::string, std::string> expected = {
      {"tinyci_queue_length", "gauge"},
      {"tinyci_jobs", "gauge"},
      {"tinyci_jobs_finished", "gauge"},
      {"tinyci_runners", "gauge"},
      {"tinyci_dispatch_to_start_seconds", "histogram"},
      {"tinyci_job_duration_seconds", "histogram"},
      {"tinyci_reporter_last_seq", "gauge"},
      {"tinyci_reporter_lag_events", "gauge"},
      {"tinyci_reporter_lag_seconds", "gauge"},
  };
  for (const auto& [name, type] : expected) {
    ASSERT_TRUE(families.contains(name)) << name << "\n" << r.body;
    EXPECT_EQ(families[name]["type"], type) << name;
  }
  EXPECT_EQ(sample(families, "tinyci_queue_length", "tinyci_queue_length"), 0);
  EXPECT_EQ(sample(families, "tinyci_jobs", "tinyci_jobs", {{"state", "finished"}}), 2);
  EXPECT_EQ(
      sample(families, "tinyci_jobs_finished", "tinyci_jobs_finished", {{"status", "passed"}}), 1);
  EXPECT_EQ(
      sample(families, "tinyci_jobs_finished", "tinyci_jobs_finished", {{"status", "failed"}}), 1);
  EXPECT_EQ(sample(families, "tinyci_runners", "tinyci_runners", {{"state", "idle"}}), 1);
  for (const char* histogram :
       {"tinyci_dispatch_to_start_seconds", "tinyci_job_duration_seconds"}) {
    std::string name = histogram;
    EXPECT_EQ(sample(families, name, name + "_count"), 2) << name;
    EXPECT_EQ(sample(families, name, name + "_bucket", {{"le", "+Inf"}}), 2) << name;
    EXPECT_GE(sample(families, name, name + "_sum"), 0) << name;
  }
  EXPECT_GT(sample(families, "tinyci_reporter_last_seq", "tinyci_reporter_last_seq"), 0);
  // Caught up with the feed (nothing happens any more): no lag.
  json caught_up;
  EXPECT_TRUE(wait_until([&] {
    caught_up = parse_metrics(http_get(port, "/metrics").body);
    return sample(caught_up, "tinyci_reporter_lag_events", "tinyci_reporter_lag_events") == 0;
  })) << caught_up;
  EXPECT_EQ(sample(caught_up, "tinyci_reporter_lag_seconds", "tinyci_reporter_lag_seconds"), 0);
  EXPECT_EQ(sample(caught_up, "tinyci_reporter_last_seq", "tinyci_reporter_last_seq"),
            get_json(port, "/api/jobs")["jobs"][0]["seq"].get<double>());
}

TEST(ReporterHttp, WithATokenTheApiWantsTheBearerToken) {
  Cluster c;
  std::string good = make_repo(c);
  std::string token_file = c.path("token");
  write_token_file(token_file);
  c.start_dispatcher({"--token-file", token_file});
  c.start_runner({"--token-file", token_file, "--test-command", "sh ci.sh"});
  c.start_reporter({"--token-file", token_file});
  uint16_t port = c.http_port();
  const std::string bearer = std::string("Authorization: Bearer ") + kTestToken;
  // The reporter follows the dispatcher with the token: the runner's joining reaches it.
  ASSERT_TRUE(wait_until([&] {
    return http_get(port, "/api/runners", {bearer}).body.find("127.0.0.1") != std::string::npos;
  })) << c.reporter().log()
      << c.runner(0).log();

  for (const std::string target :
       {"/api/jobs", "/api/branches", "/api/runners", "/metrics", "/badge/master.svg"}) {
    HttpReply without = http_get(port, target);
    EXPECT_EQ(without.status, 401) << target;
    EXPECT_EQ(without.headers["www-authenticate"], "Bearer") << target;
    EXPECT_TRUE(json::parse(without.body, nullptr, false).contains("error")) << without.body;
    EXPECT_EQ(http_get(port, target, {"Authorization: Bearer wrong"}).status, 401) << target;
    EXPECT_EQ(http_get(port, target, {"Authorization: Basic " + std::string(kTestToken)}).status,
              401)
        << target;
    EXPECT_EQ(http_get(port, target, {bearer}).status, 200) << target;
  }
  // The pages hold no data: no token needed.
  EXPECT_EQ(http_get(port, "/").status, 200);
  // The stream takes the token as an argument too (an EventSource sets no header).
  EventStream refused(port, "/api/events");
  EXPECT_EQ(refused.wait_status(), 401);
  std::string escaped;
  for (char ch : std::string(kTestToken)) {
    char hex[4];
    std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(ch));
    escaped += std::isalnum(static_cast<unsigned char>(ch)) ? std::string(1, ch) : hex;
  }
  EventStream allowed(port, "/api/events?token=" + escaped);
  EXPECT_EQ(allowed.wait_status(), 200);
  // A job run with the token on every side shows.
  auto reply = run({bin("cictl"), "--dispatcher-server", c.server(), "--token-file", token_file,
                    "dispatch", good, "--branch", "master"});
  EXPECT_TRUE(wait_until(
      [&] {
        HttpReply r = http_get(port, "/api/jobs?status=passed", {bearer});
        return r.status == 200 && r.body.find(good) != std::string::npos;
      },
      60000ms))
      << reply << c.reporter().log();
}

TEST(ReporterHttp, ANonLoopbackAddressWithoutATokenIsRefusedUnlessInsecure) {
  Cluster c;
  c.start_dispatcher();
  CommandSpec spec;
  spec.argv = {
      bin("ci-reporter"), "--dispatcher-server", c.server(), "--db", c.path("r.db"), "--http",
      "0.0.0.0:0"};
  spec.env = current_environment();
  spec.timeout = 20000ms;
  auto refused = run_command(spec);
  ASSERT_TRUE(refused.ok()) << refused.error();
  EXPECT_EQ(refused->exit_code, 2) << refused->output;
  EXPECT_NE(refused->output.find("refusing to listen on 0.0.0.0 without a token"),
            std::string::npos)
      << refused->output;
  EXPECT_NE(refused->output.find("--token-file"), std::string::npos) << refused->output;
  EXPECT_NE(refused->output.find("--insecure"), std::string::npos) << refused->output;
  EXPECT_FALSE(file_exists(c.path("r.db")));

  // With --insecure it serves there.
  Daemon insecure("ci-reporter",
                  {"--dispatcher-server", c.server(), "--db", c.path("r.db"), "--http", "0.0.0.0:0",
                   "--insecure"},
                  c.path("insecure.log"));
  uint16_t port = insecure.wait_listening();
  ASSERT_NE(port, 0);
  EXPECT_EQ(http_get(port, "/api/branches").status, 200);
}

TEST(ReporterHttp, HostileClientsGetNothingAndBlockNobody) {
  Cluster c;
  make_repo(c);
  c.start_dispatcher();
  c.start_reporter({"--http-timeout", "1"});
  uint16_t port = c.http_port();
  HttpReply css = http_get(port, "/assets/app.css");
  ASSERT_EQ(css.status, 200);
  EXPECT_EQ(css.headers["content-type"].rfind("text/css", 0), 0u) << css.headers["content-type"];

  // Paths out of the assets: nothing served, nothing from the disk.
  std::string secret_dir = c.path("outside");
  fs::create_directories(secret_dir);
  std::ofstream(secret_dir + "/secret.txt") << "the secret";
  std::string relative = fs::relative(secret_dir + "/secret.txt", "/").string();
  std::string up = "";
  for (int i = 0; i < 12; ++i) up += "../";
  for (const std::string& target : std::vector<std::string>{
           "/assets/../../../../../../etc/passwd", "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
           "/assets/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/../../../../etc/passwd",
           "/assets/..%2f..%2f..%2f..%2fetc%2fpasswd", "/assets/app.css/../../../../etc/passwd",
           "/jobs/1/../../../../etc/passwd", "/assets/../CMakeLists.txt",
           "/assets/../assets/job.html", "/assets/" + up + relative, "/" + up + relative,
           "/assets/%2e%2e/dashboard.html", "/assets//etc/passwd", "/assets/./app.css/..",
           "/etc/passwd"}) {
    RawAnswer answer = raw_exchange(port, "GET " + target + " HTTP/1.0\r\n\r\n");
    EXPECT_TRUE(answer.status == 404 || answer.status == 400) << target << "\n" << answer.text;
    EXPECT_EQ(answer.text.find("root:"), std::string::npos) << target;
    EXPECT_EQ(answer.text.find("the secret"), std::string::npos) << target;
    EXPECT_EQ(answer.text.find("project("), std::string::npos) << target;
  }

  // A header past the connection's memory: refused, and the server answers the next.
  RawAnswer big = raw_exchange(
      port, "GET /api/jobs HTTP/1.0\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
  EXPECT_TRUE(big.status == 431 || big.status == 413 || big.status == 400 ||
              (big.status == 0 && big.text.empty()))
      << big.text.substr(0, 200);
  EXPECT_EQ(http_get(port, "/api/jobs").status, 200);

  // Half a request, then silence: others are served meanwhile, and it is closed after
  // the timeout (1 s; a generous deadline for it).
  auto slow = RawSocket::connect(port);
  ASSERT_TRUE(slow);
  ASSERT_TRUE(slow->send("GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: "));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(http_get(port, "/api/branches").status, 200);
  std::string sent;
  EXPECT_TRUE(slow->closes_without_sending(15000ms, &sent)) << sent;
  EXPECT_EQ(http_get(port, "/api/runners").status, 200);
  EXPECT_TRUE(c.reporter().running());
}

}  // namespace
}  // namespace ci::test
