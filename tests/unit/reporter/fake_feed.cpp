#include "fake_feed.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "ci/auth.h"

namespace ci::reporter::test_peer {

using namespace std::chrono_literals;

void FakeFeed::start(uint16_t port, const std::string& token) {
  ServerOptions options;
  options.port = port;
  options.token = token;
  options.service = kDispatcherService;
  options.threads = 4;  // a long-polling `events` holds one
  options.idle_timeout = 60s;
  {
    MutexLock lock(mu_);
    stopping_ = false;
  }
  server_ = std::make_unique<LineServer>(
      options, request_has_body,
      [this](const Frame& frame, const std::string&) { return handle(frame); });
  auto started = server_->start();
  ASSERT_TRUE(started.ok()) << started.error();
  port_ = server_->port();
}

void FakeFeed::stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  news_.notify_all();
  server_.reset();
}

uint64_t FakeFeed::add(FeedEvent event) {
  uint64_t seq;
  {
    MutexLock lock(mu_);
    seq = event.seq = next_seq_++;
    if (event.time_ms == 0) event.time_ms = 1764720000000 + static_cast<int64_t>(seq);
    if (event.kind != EventKind::JobLog && event.kind != EventKind::RunnerJoined &&
        event.kind != EventKind::RunnerLeft) {
      event.job.seq = seq;
      jobs_[event.job.id] = event.job;
      if (event.kind == EventKind::JobFinished) cases_[event.job.id] = event.cases;
    }
    events_.push_back(std::move(event));
  }
  news_.notify_all();
  return seq;
}

void FakeFeed::trim(uint64_t seq) {
  MutexLock lock(mu_);
  trimmed_ = std::max(trimmed_, seq);
  std::erase_if(events_, [seq](const FeedEvent& e) { return e.seq <= seq; });
}

void FakeFeed::set_cases(JobId job, std::vector<TestCase> cases) {
  MutexLock lock(mu_);
  cases_[job] = std::move(cases);
}

void FakeFeed::set_log(JobId job, std::string bytes, bool done) {
  MutexLock lock(mu_);
  logs_[job] = {std::move(bytes), done};
}

void FakeFeed::set_runners(std::vector<RunnerRow> runners) {
  MutexLock lock(mu_);
  runners_ = std::move(runners);
}

size_t FakeFeed::events_calls() {
  MutexLock lock(mu_);
  return events_calls_;
}

Reply FakeFeed::events(const EventsRequest& request) {
  MutexLock lock(mu_);
  ++events_calls_;
  auto deadline =
      std::chrono::steady_clock::now() +
      std::min<std::chrono::milliseconds>(std::chrono::milliseconds(request.wait_ms), 2s);
  auto has_news = [&]() REQUIRES(mu_) {
    return stopping_ || (!events_.empty() && events_.back().seq > request.from);
  };
  while (!has_news() && news_.wait_until(lock, deadline)) {
  }
  uint64_t oldest = trimmed_ + 1, last = next_seq_ - 1;
  std::string body;
  if (request.from + 1 >= oldest) {
    uint64_t n = 0;
    for (const auto& e : events_)
      if (e.seq > request.from && n++ < request.max) body += serialize_event(e);
  }
  Reply reply = Reply::ok_with_body(body);
  reply.args = {std::to_string(oldest), std::to_string(last)};
  return reply;
}

Response FakeFeed::handle(const Frame& frame) {
  auto request = parse_request(frame);
  if (!request) return {serialize_reply(Reply::err(request.error())), true};
  if (auto* e = std::get_if<EventsRequest>(&*request)) return {serialize_reply(events(*e))};
  MutexLock lock(mu_);
  if (auto* s = std::get_if<SnapshotRequest>(&*request)) {
    std::string body;
    uint64_t n = 0;
    for (auto it = jobs_.upper_bound(s->after); it != jobs_.end() && n < s->limit; ++it, ++n)
      body += serialize_job_info(it->second) + "\n";
    Reply reply = Reply::ok_with_body(body);
    reply.args = {std::to_string(next_seq_ - 1)};
    return {serialize_reply(reply)};
  }
  if (auto* t = std::get_if<TestsRequest>(&*request)) {
    auto it = cases_.find(t->job);
    return {serialize_reply(
        Reply::ok_with_body(it == cases_.end() ? "" : serialize_cases(it->second)))};
  }
  if (auto* l = std::get_if<LogReadRequest>(&*request)) {
    auto it = logs_.find(l->job);
    if (it == logs_.end()) return {serialize_reply(Reply::err("no such job"))};
    const auto& [bytes, done] = it->second;
    uint64_t start = std::min<uint64_t>(l->offset, bytes.size());
    Reply reply = Reply::ok_with_body(bytes.substr(start, l->max));
    reply.args = {std::to_string(start), std::to_string(bytes.size()), done ? "1" : "0"};
    return {serialize_reply(reply)};
  }
  if (std::holds_alternative<RunnersRequest>(*request))
    return {serialize_reply(to_reply(RunnersReply{runners_}))};
  return {serialize_reply(Reply::err("not served here"))};
}

FeedEvent job_event(EventKind kind, JobInfo job) {
  FeedEvent e;
  e.kind = kind;
  e.job = std::move(job);
  return e;
}

FeedEvent finished(JobInfo job, std::vector<TestCase> cases) {
  FeedEvent e = job_event(EventKind::JobFinished, std::move(job));
  e.cases = std::move(cases);
  return e;
}

FeedEvent runner_event(EventKind kind, const std::string& runner) {
  FeedEvent e;
  e.kind = kind;
  e.runner = runner;
  return e;
}

std::string sha(const std::string& label) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : label.substr(0, 20)) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  out.resize(40, '0');
  return out;
}

JobInfo make_job(JobId id, const std::string& commit, const std::string& branch,
                 const std::string& state, const std::string& author) {
  JobInfo job;
  job.id = id;
  job.commit = sha(commit);
  job.branch = branch;
  job.state = state;
  job.commit_info.author = author;
  job.commit_info.email = "alice@example.com";
  job.commit_info.subject = "change " + commit;
  job.queued_ms = 1764720000000;
  return job;
}

TestCase test_case(const std::string& name, CaseOutcome outcome) {
  TestCase c;
  c.name = name;
  c.outcome = outcome;
  c.duration_ms = 3;
  if (outcome == CaseOutcome::Failed) c.message = "AssertionError: 1 != 2";
  return c;
}

}  // namespace ci::reporter::test_peer
