// The reporter against the real dispatcher and runners, under faults: killed with
// SIGKILL again and again while jobs flow, notifying a webhook that fails or hangs, and
// down for longer than the feed keeps its events. Whatever happens, once it has caught
// up its read model holds the dispatcher's jobs, and its webhook got every notification
// (a repeat only where a kill fell between a delivery and its outbox row's removal, as
// docs/API.md says: receivers drop repeats by the delivery id).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "ci/events.h"
#include "cluster.h"

namespace ci::test {
namespace {

using Steady = std::chrono::steady_clock;
using nlohmann::json;

// ---- Loopback sockets with deadlines.

int connect_loopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Appends what arrives before `deadline`; false on the end of the stream or the deadline.
bool read_into(int fd, std::string* out, Steady::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Steady::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return false;
    if (ready == 0) continue;
    char buf[16384];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    out->append(buf, static_cast<size_t>(n));
    return true;
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The header fields of an HTTP head (the start line skipped), names in lower case.
std::map<std::string, std::string> header_fields(const std::string& head) {
  std::map<std::string, std::string> fields;
  std::istringstream lines(head);
  std::string line;
  std::getline(lines, line);
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    fields[lower(line.substr(0, colon))] = value;
  }
  return fields;
}

// ---- The reporter's HTTP API, asked over HTTP/1.0 (every reply ends with the connection).

struct HttpReply {
  int status = 0;  // 0: no reply
  std::string body;
};

HttpReply http_get(uint16_t port, const std::string& target) {
  HttpReply reply;
  int fd = connect_loopback(port);
  if (fd < 0) return reply;
  std::string in;
  if (send_all(fd, "GET " + target + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")) {
    auto deadline = Steady::now() + std::chrono::seconds(10);
    while (read_into(fd, &in, deadline)) {
    }
  }
  ::close(fd);
  auto end = in.find("\r\n\r\n");
  if (end == std::string::npos || in.rfind("HTTP/1.", 0) != 0 || in.size() < 12) return reply;
  reply.status = std::atoi(in.substr(9, 3).c_str());
  reply.body = in.substr(end + 4);
  return reply;
}

// A job as both sides can say it, for comparing them.
std::string describe(const JobRow& job) {
  std::ostringstream out;
  out << "job " << job.id << " " << job.commit << " " << job.branch << " " << job.state << " "
      << (job.status ? to_string(*job.status) : "-") << " attempt " << job.attempt << " runner "
      << job.runner << " tests " << job.tests_run << "/" << job.tests_failed << " duration "
      << (job.duration_ms ? std::to_string(*job.duration_ms) : "-");
  return out.str();
}

// The dispatcher's jobs, by id.
std::vector<std::string> dispatcher_jobs(Cluster& c) {
  auto jobs = jobs_of(c);
  std::sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  std::vector<std::string> out;
  for (const auto& job : jobs) out.push_back(describe(job));
  return out;
}

// Every job of the reporter's read model, read from /api/jobs page by page, by id;
// nullopt when a page cannot be had.
std::optional<std::vector<std::string>> reporter_jobs(uint16_t port) {
  std::vector<JobRow> jobs;
  std::optional<uint64_t> before;
  for (int pages = 0; pages < 1000; ++pages) {
    auto reply =
        http_get(port, "/api/jobs?limit=16" + (before ? "&before=" + std::to_string(*before) : ""));
    if (reply.status != 200) return std::nullopt;
    auto page = json::parse(reply.body, nullptr, false);
    if (page.is_discarded() || !page.contains("jobs")) return std::nullopt;
    for (const auto& j : page["jobs"]) {
      JobRow row;
      row.id = j.at("id").get<JobId>();
      row.commit = j.at("commit").get<std::string>();
      row.branch = j.at("branch").get<std::string>();
      row.state = j.at("state").get<std::string>();
      if (!j.at("status").is_null()) {
        TestStatus status;
        if (!parse_test_status(j.at("status").get<std::string>(), &status)) return std::nullopt;
        row.status = status;
      }
      row.attempt = j.at("attempt").get<uint32_t>();
      row.runner = j.at("runner").get<std::string>();
      row.tests_run = j.at("tests_run").get<int64_t>();
      row.tests_failed = j.at("tests_failed").get<int64_t>();
      if (row.state == "finished") row.duration_ms = j.at("duration_ms").get<uint64_t>();
      jobs.push_back(std::move(row));
    }
    if (page["next_before"].is_null()) {
      std::sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
      std::vector<std::string> out;
      for (const auto& job : jobs) out.push_back(describe(job));
      return out;
    }
    before = page["next_before"].get<uint64_t>();
  }
  return std::nullopt;
}

// The last feed event the read model applied, as /metrics says; -1 if it cannot be had.
int64_t reporter_last_seq(uint16_t port) {
  auto reply = http_get(port, "/metrics");
  if (reply.status != 200) return -1;
  std::istringstream lines(reply.body);
  const std::string name = "tinyci_reporter_last_seq ";
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(name, 0) == 0) return std::llround(std::stod(line.substr(name.size())));
  return -1;
}

// The feed's oldest and last seq.
std::pair<uint64_t, uint64_t> feed_bounds(Cluster& c) {
  auto reply = c.ask(EventsRequest{0, 1, 0});
  if (!reply || reply->kind != Reply::Kind::Ok || reply->args.size() != 2) {
    ADD_FAILURE() << "events: no answer";
    return {0, 0};
  }
  return {std::stoull(reply->args[0]), std::stoull(reply->args[1])};
}

// Every event the feed holds, in order.
std::vector<FeedEvent> feed_events(Cluster& c) {
  std::vector<FeedEvent> all;
  uint64_t from = 0, last = feed_bounds(c).second;
  while (from < last) {
    auto reply = c.ask(EventsRequest{from, 1000, 0});
    if (!reply || reply->kind != Reply::Kind::Ok) {
      ADD_FAILURE() << "events: no answer";
      break;
    }
    auto events = parse_events(reply->body);
    if (!events || events->empty()) {
      ADD_FAILURE() << "events: " << (events ? "none" : events.error());
      break;
    }
    from = events->back().seq;
    all.insert(all.end(), events->begin(), events->end());
  }
  return all;
}

// Waits until every job dispatched has finished at the dispatcher, then until the
// reporter says it applied the feed's last event and lists the dispatcher's jobs. (The
// status has a finished job at once; the feed gets its event with the dispatcher's next
// group commit, a moment later: the feed's end read once could be short of it.)
bool wait_caught_up(Cluster& c, size_t jobs) {
  if (!wait_until([&] { return c.status_value("jobs-finished") == static_cast<int64_t>(jobs); },
                  60000ms)) {
    ADD_FAILURE() << "the jobs did not finish: " << c.status_value("jobs-finished") << " of "
                  << jobs;
    return false;
  }
  int64_t last = 0;
  if (!wait_until(
          [&] {
            last = static_cast<int64_t>(feed_bounds(c).second);
            return reporter_last_seq(c.http_port()) >= last &&
                   reporter_jobs(c.http_port()) == dispatcher_jobs(c);
          },
          30000ms)) {
    ADD_FAILURE() << "the reporter is at " << reporter_last_seq(c.http_port()) << ", the feed at "
                  << last << "\n"
                  << c.reporter().log();
    return false;
  }
  return true;
}

// The branches' states as the reporter's /api/branches says them, and as the
// dispatcher's jobs say them: each branch is as its newest (highest id) finished job
// says, cancelled jobs saying nothing.
std::map<std::string, std::string> reporter_branches(uint16_t port) {
  std::map<std::string, std::string> out;
  auto reply = http_get(port, "/api/branches");
  auto list = json::parse(reply.body, nullptr, false);
  if (reply.status != 200 || !list.is_array()) return out;
  for (const auto& b : list)
    out[b.at("name").get<std::string>()] = b.at("state").get<std::string>();
  return out;
}

std::map<std::string, std::string> dispatcher_branches(Cluster& c) {
  std::map<std::string, std::pair<JobId, std::string>> newest;
  for (const auto& job : jobs_of(c)) {
    auto& entry = newest[job.branch];
    if (job.state != "finished" || !job.status || *job.status == TestStatus::Cancelled) {
      if (entry.second.empty()) entry = {0, "unknown"};
      continue;
    }
    if (job.id >= entry.first)
      entry = {job.id, *job.status == TestStatus::Passed ? "passing" : "failing"};
  }
  std::map<std::string, std::string> out;
  for (const auto& [branch, entry] : newest) out[branch] = entry.second;
  return out;
}

// The notification ids the feed's events call for, in the order they are made: one per
// finished (or cancelled) job, and one per change of a branch's state after its first
// (a job older than the branch's newest finished one, finishing late, changes nothing).
std::vector<std::string> expected_notifications(const std::vector<FeedEvent>& events) {
  std::vector<std::string> ids;
  std::map<std::string, std::pair<std::string, JobId>> branches;  // state, newest job
  for (const auto& e : events) {
    if (e.kind != EventKind::JobFinished && e.kind != EventKind::JobCancelled) continue;
    ids.push_back(std::to_string(e.seq) + ".job.finished");
    if (!e.job.status || *e.job.status == TestStatus::Cancelled) continue;
    std::string state = *e.job.status == TestStatus::Passed ? "passing" : "failing";
    auto it = branches.find(e.job.branch);
    if (it != branches.end() && it->second.second > e.job.id) continue;
    if (it != branches.end() && it->second.first != state)
      ids.push_back(std::to_string(e.seq) + ".branch." + state);
    branches[e.job.branch] = {state, e.job.id};
  }
  return ids;
}

// ---- A webhook receiver: answers each POST as the test says, and records it.

class WebhookReceiver {
 public:
  struct Request {
    std::string delivery;  // the X-Tinyci-Delivery header
    std::string id;        // the body's "id"
    int status = 0;        // the answer; 0: none (it hung)
  };

  // `answer(id, n)`: the status for the n-th request (from 0) of delivery `id`; 0:
  // never answer (until the receiver closes).
  explicit WebhookReceiver(std::function<int(const std::string& id, int n)> answer)
      : answer_(std::move(answer)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 64) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      ADD_FAILURE() << "webhook receiver: cannot listen";
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~WebhookReceiver() { close(); }
  WebhookReceiver(const WebhookReceiver&) = delete;
  WebhookReceiver& operator=(const WebhookReceiver&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }

  // The complete requests, in the order they came.
  std::vector<Request> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  // The ids of the requests answered with a 2xx, in the order they came.
  std::vector<std::string> accepted() {
    std::vector<std::string> ids;
    for (const auto& r : requests())
      if (r.status >= 200 && r.status < 300) ids.push_back(r.id);
    return ids;
  }
  int requests_of(const std::string& id) {
    int n = 0;
    for (const auto& r : requests()) n += r.id == id;
    return n;
  }

  // Closes every connection (hanging ones included) and stops.
  void close() {
    if (closing_.exchange(true)) return;
    ::shutdown(listener_, SHUT_RDWR);
    {
      std::lock_guard lock(mutex_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    acceptor_.join();
    for (auto& t : threads_) t.join();
    for (int fd : fds_) ::close(fd);
    ::close(listener_);
  }

 private:
  void accept_loop() {
    while (!closing_) {
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      std::lock_guard lock(mutex_);
      if (closing_) {
        ::close(fd);
        return;
      }
      fds_.push_back(fd);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    std::string in;
    auto deadline = Steady::now() + std::chrono::seconds(30);
    size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos)
      if (!read_into(fd, &in, deadline)) return;
    auto fields = header_fields(in.substr(0, head_end));
    size_t length = fields.count("content-length") ? std::stoul(fields["content-length"]) : 0;
    if (lower(fields["expect"]) == "100-continue" && in.size() < head_end + 4 + length)
      send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
    while (in.size() < head_end + 4 + length)
      if (!read_into(fd, &in, deadline)) return;  // the sender went away mid-request
    auto body = json::parse(in.substr(head_end + 4, length), nullptr, false);
    Request request;
    request.delivery = fields["x-tinyci-delivery"];
    if (body.is_object() && body.contains("id") && body["id"].is_string())
      request.id = body["id"].get<std::string>();
    {
      std::lock_guard lock(mutex_);
      request.status = answer_(request.id, tries_[request.id]++);
      requests_.push_back(request);
    }
    if (request.status == 0) {
      // Hangs: holds the connection without a word until the sender gives up or
      // close() shuts it.
      std::string ignored;
      while (!closing_ && read_into(fd, &ignored, Steady::now() + std::chrono::seconds(60))) {
      }
      return;
    }
    send_all(fd, "HTTP/1.1 " + std::to_string(request.status) +
                     " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  }

  std::function<int(const std::string&, int)> answer_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> closing_{false};
  std::mutex mutex_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
  std::map<std::string, int> tries_;
  std::vector<Request> requests_;
  std::thread acceptor_;
};

// ---- Jobs.

struct Commit {
  std::string id, branch;
};

// The commits of `branch` after `base`, oldest first.
std::vector<std::string> commits_after(const std::string& repo, const std::string& base,
                                       const std::string& branch) {
  std::istringstream lines(git(repo, {"rev-list", "--reverse", base + ".." + branch}));
  std::vector<std::string> out;
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// `per_branch` new commits on each of master and feature, alternating: on top of
// `base`, or of each branch's newest commit when `base` is empty.
std::vector<Commit> make_commits(Cluster& c, const std::string& base, int per_branch) {
  static int64_t date = 1764720000;
  date += 100000;
  std::string master_base = base.empty() ? git(c.master(), {"rev-parse", "master"}) : base;
  std::string feature_base = base.empty() ? git(c.master(), {"rev-parse", "feature"}) : base;
  for (auto* b : {&master_base, &feature_base})
    while (!b->empty() && b->back() == '\n') b->pop_back();
  import_commits(c.master(), "master", master_base, per_branch, date);
  import_commits(c.master(), "feature", feature_base, per_branch, date + 50000);
  auto master = commits_after(c.master(), master_base, "master");
  auto feature = commits_after(c.master(), feature_base, "feature");
  std::vector<Commit> out;
  for (size_t i = 0; i < std::max(master.size(), feature.size()); ++i) {
    if (i < master.size()) out.push_back({master[i], "master"});
    if (i < feature.size()) out.push_back({feature[i], "feature"});
  }
  return out;
}

void dispatch(Cluster& c, const std::vector<Commit>& commits) {
  for (const auto& commit : commits) {
    auto reply = c.ask(DispatchRequest{commit.id, commit.branch});
    ASSERT_TRUE(reply && reply->kind == Reply::Kind::Ok)
        << commit.id << ": " << (reply ? reply->reason() : reply.error());
  }
}

// The test command: jobs 3 and 4 of every 5 fail, so that both branches change state
// now and then.
const char kSomeFail[] = "test $((CI_JOB_ID % 5)) -lt 3";

// Each time `every` more results are in, kills the reporter (SIGKILL) and starts it
// again on the same read model, until `total` results are in. Returns the kills.
int kill_reporter_as_results_come(Cluster& c, size_t total, size_t every,
                                  const std::vector<std::string>& reporter_args) {
  int kills = 0;
  size_t seen = 0;
  for (;;) {
    size_t target = std::min(seen + every, total);
    if (!wait_until([&] { return c.result_files().size() >= target; }, 60000ms)) {
      ADD_FAILURE() << "results: " << c.result_files().size() << " of " << total;
      return kills;
    }
    seen = c.result_files().size();
    if (seen >= total) return kills;
    Cluster::kill_hard(c.reporter());
    ++kills;
    c.start_reporter(reporter_args);
  }
}

// A cluster with a dispatcher and `runners` runners whose tests run `command`; the
// master repository's first commit in *first.
void start_cluster(Cluster& c, std::string* first, int runners, const std::string& command,
                   std::vector<std::string> dispatcher_args = {}) {
  *first = make_master_repo(c.master());
  c.start_dispatcher(std::move(dispatcher_args));
  for (int i = 0; i < runners; ++i) c.start_runner({"--test-command", command});
  ASSERT_TRUE(c.wait_runners(runners));
}

TEST(ReporterFault, KilledAgainAndAgainWhileJobsFlowItsReadModelEndsAsTheDispatchersJobs) {
  Cluster c;
  std::string first;
  ASSERT_NO_FATAL_FAILURE(start_cluster(c, &first, 2, kSomeFail));
  c.start_reporter();
  ASSERT_NE(c.http_port(), 0);
  auto commits = make_commits(c, first, 24);
  ASSERT_EQ(commits.size(), 48u);
  ASSERT_NO_FATAL_FAILURE(dispatch(c, commits));

  int kills = kill_reporter_as_results_come(c, commits.size(), 4, {});
  EXPECT_GE(kills, 3);
  ASSERT_TRUE(wait_caught_up(c, commits.size()));

  auto expected = dispatcher_jobs(c);
  ASSERT_EQ(expected.size(), commits.size());
  auto seen = reporter_jobs(c.http_port());
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(*seen, expected);
  auto branches = dispatcher_branches(c);
  EXPECT_EQ(branches.size(), 2u);
  EXPECT_EQ(reporter_branches(c.http_port()), branches);
}

TEST(ReporterFault, KilledAgainAndAgainItsWebhookGetsEveryNotificationRepeatedOnlyAcrossAKill) {
  Cluster c;
  WebhookReceiver receiver([](const std::string&, int) { return 200; });
  std::string first;
  ASSERT_NO_FATAL_FAILURE(start_cluster(c, &first, 2, kSomeFail));
  std::vector<std::string> args = {"--notify-webhook", receiver.url()};
  c.start_reporter(args);
  auto commits = make_commits(c, first, 15);
  ASSERT_NO_FATAL_FAILURE(dispatch(c, commits));

  int kills = kill_reporter_as_results_come(c, commits.size(), 3, args);
  EXPECT_GE(kills, 3);
  ASSERT_TRUE(wait_caught_up(c, commits.size()));
  auto expected = expected_notifications(feed_events(c));
  ASSERT_GE(expected.size(), commits.size() + 2);  // both branches changed state
  std::set<std::string> expected_set(expected.begin(), expected.end());
  ASSERT_TRUE(wait_until([&] {
    auto accepted = receiver.accepted();
    std::set<std::string> got(accepted.begin(), accepted.end());
    return std::includes(got.begin(), got.end(), expected_set.begin(), expected_set.end());
  })) << c.reporter().log();

  // Each request carries its id both in the header and in the body.
  for (const auto& r : receiver.requests()) EXPECT_EQ(r.delivery, r.id);
  // Each notification the events called for came, in order; a repeat is only the one
  // delivery a kill may have interrupted before its outbox row went: at most one a kill.
  std::vector<std::string> distinct;
  std::set<std::string> seen;
  int repeats = 0;
  for (const auto& id : receiver.accepted()) {
    if (seen.insert(id).second)
      distinct.push_back(id);
    else
      ++repeats;
  }
  EXPECT_EQ(distinct, expected);
  EXPECT_LE(repeats, kills);
}

TEST(ReporterFault, AWebhookFailingTwiceForEachDeliveryStillGetsEachNotificationOnce) {
  Cluster c;
  WebhookReceiver receiver([](const std::string&, int n) { return n < 2 ? 500 : 200; });
  std::string first;
  // Job 2 fails: the branch goes failing, then passing again.
  ASSERT_NO_FATAL_FAILURE(start_cluster(c, &first, 1, "test \"$CI_JOB_ID\" != 2"));
  c.start_reporter({"--notify-webhook", receiver.url()});
  import_commits(c.master(), "master", first, 3, 1764720000);
  std::vector<Commit> commits;
  for (const auto& id : commits_after(c.master(), first, "master"))
    commits.push_back({id, "master"});
  ASSERT_NO_FATAL_FAILURE(dispatch(c, commits));
  ASSERT_TRUE(wait_caught_up(c, commits.size()));
  auto expected = expected_notifications(feed_events(c));
  ASSERT_EQ(expected.size(), 5u);  // three jobs, and the branch failing then passing

  // With its backoff, the notifier needs a few seconds for each.
  ASSERT_TRUE(wait_until([&] { return receiver.accepted().size() >= expected.size(); }, 60000ms))
      << c.reporter().log();
  EXPECT_EQ(receiver.accepted(), expected);
  for (const auto& id : expected) EXPECT_EQ(receiver.requests_of(id), 3) << id;
  for (const auto& r : receiver.requests()) EXPECT_EQ(r.delivery, r.id);
}

TEST(ReporterFault, AHangingWebhookHoldsBackNeitherResultsNorTheReadModel) {
  Cluster c;
  WebhookReceiver receiver([](const std::string&, int) { return 0; });
  std::string first;
  ASSERT_NO_FATAL_FAILURE(start_cluster(c, &first, 2, kSomeFail));
  c.start_reporter({"--notify-webhook", receiver.url(), "--notify-timeout", "1"});
  auto commits = make_commits(c, first, 4);
  ASSERT_NO_FATAL_FAILURE(dispatch(c, commits));

  // Each notification takes the notifier at least 1 + 1 + 2 + 4 + ... seconds of hung
  // attempts and backoff: the eight jobs' would take minutes, and all the while results
  // are written and the read model follows the feed.
  for (const auto& commit : commits) EXPECT_TRUE(c.wait_result(commit.id, 30000ms)) << commit.id;
  ASSERT_TRUE(wait_caught_up(c, commits.size()));
  auto seen = reporter_jobs(c.http_port());
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(*seen, dispatcher_jobs(c));
  auto requests = receiver.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_TRUE(receiver.accepted().empty());
  // The first delivery's hung attempt ends with --notify-timeout, and is tried again.
  std::string id = requests.front().id;
  EXPECT_TRUE(wait_until([&] { return receiver.requests_of(id) >= 2; }, 15000ms));
}

TEST(ReporterFault, DownLongerThanTheFeedKeepsEventsItRebuildsFromASnapshot) {
  Cluster c;
  std::string first;
  ASSERT_NO_FATAL_FAILURE(start_cluster(c, &first, 2, kSomeFail, {"--event-retention", "100"}));
  c.start_reporter();
  auto commits = make_commits(c, first, 3);
  ASSERT_NO_FATAL_FAILURE(dispatch(c, commits));
  // Killed as soon as the first results are in: most times with jobs still on their
  // way, rows of the read model that the snapshot must bring up to date.
  ASSERT_TRUE(wait_until([&] {
    return reporter_jobs(c.http_port()).value_or(std::vector<std::string>{}).size() ==
           commits.size();
  }));
  ASSERT_TRUE(wait_until([&] { return c.result_files().size() >= 2; }));
  Cluster::kill_hard(c.reporter());
  uint64_t reporter_at_most = feed_bounds(c).second;

  // More jobs than the feed keeps the events of, meanwhile.
  size_t total = commits.size();
  for (int round = 0; feed_bounds(c).first <= reporter_at_most + 1; ++round) {
    ASSERT_LT(round, 10) << "the feed keeps its events";
    auto more = make_commits(c, "", 5);
    ASSERT_NO_FATAL_FAILURE(dispatch(c, more));
    total += more.size();
    ASSERT_TRUE(wait_until(
        [&] { return c.status_value("jobs-finished") == static_cast<int64_t>(total); }, 60000ms));
  }

  c.start_reporter();
  ASSERT_TRUE(wait_caught_up(c, total));
  // Logged once the snapshot is applied, a moment after the read model has it: waited for.
  EXPECT_TRUE(wait_until([&] {
    return c.reporter().log_contains("rebuilt the read model from a snapshot");
  })) << c.reporter().log();
  auto expected = dispatcher_jobs(c);
  ASSERT_EQ(expected.size(), total);
  auto seen = reporter_jobs(c.http_port());
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(*seen, expected);
  EXPECT_EQ(reporter_branches(c.http_port()), dispatcher_branches(c));
}

}  // namespace
}  // namespace ci::test
