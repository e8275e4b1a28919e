#include "fake_dispatcher.h"

#include <gtest/gtest.h>

#include "ci/auth.h"
#include "test_support.h"

namespace ci::runner::test_peer {

void FakeDispatcher::start(uint16_t port, const std::string& token) {
  ServerOptions options;
  options.port = port;
  options.token = token;
  options.service = kDispatcherService;
  server_ = std::make_unique<LineServer>(
      options, request_has_body,
      [this](const Frame& frame, const std::string&) { return handle(frame); });
  auto started = server_->start();
  ASSERT_TRUE(started.ok()) << started.error();
  port_ = server_->port();
}

void FakeDispatcher::stop() { server_.reset(); }

void FakeDispatcher::refuse_results() {
  MutexLock lock(mu_);
  refuse_results_ = true;
}

void FakeDispatcher::refuse_registrations(bool refuse) {
  MutexLock lock(mu_);
  refuse_registrations_ = refuse;
}

void FakeDispatcher::busy_results(bool busy) {
  MutexLock lock(mu_);
  busy_results_ = busy;
}

size_t FakeDispatcher::busy_answers() {
  MutexLock lock(mu_);
  return busy_answers_;
}

std::vector<RegisterRequest> FakeDispatcher::registrations() {
  MutexLock lock(mu_);
  return registrations_;
}

std::vector<ResultsRequest> FakeDispatcher::results() {
  MutexLock lock(mu_);
  return results_;
}

ResultsRequest FakeDispatcher::result_of(JobId job) {
  ResultsRequest found;
  EXPECT_TRUE(ci::test::wait_until([&] {
    for (const auto& r : results()) {
      if (r.job == job) {
        found = r;
        return true;
      }
    }
    return false;
  })) << "no results for job "
      << job;
  return found;
}

std::vector<AbandonRequest> FakeDispatcher::abandoned() {
  MutexLock lock(mu_);
  return abandoned_;
}

std::vector<UnregisterRequest> FakeDispatcher::unregistered() {
  MutexLock lock(mu_);
  return unregistered_;
}

std::vector<std::string> FakeDispatcher::verbs() {
  MutexLock lock(mu_);
  return verbs_;
}

void FakeDispatcher::refuse_logs(bool refuse) {
  MutexLock lock(mu_);
  refuse_logs_ = refuse;
}

std::string FakeDispatcher::log(JobId job, uint32_t attempt) {
  MutexLock lock(mu_);
  auto found = logs_.find({job, attempt});
  return found == logs_.end() ? "" : found->second.text;
}

size_t FakeDispatcher::log_messages() {
  MutexLock lock(mu_);
  return log_messages_;
}

Response FakeDispatcher::take_log(const LogRequest& request) {
  ++log_messages_;
  if (refuse_logs_) return {serialize_reply(Reply::err("no live log here")), true};
  Log& log = logs_[{request.job, request.attempt}];
  uint64_t end = request.offset + request.bytes.size();
  if (request.offset > log.received) {
    log.text += "[" + std::to_string(request.offset - log.received) + " bytes omitted]";
    log.received = request.offset;
  }
  if (end > log.received) {
    log.text += request.bytes.substr(log.received - request.offset);
    log.received = end;
  }
  return {serialize_reply(Reply::ok({std::to_string(log.received)}))};
}

Response FakeDispatcher::handle(const Frame& frame) {
  auto request = parse_request(frame);
  if (!request) return {serialize_reply(Reply::err(request.error())), true};
  MutexLock lock(mu_);
  if (auto* log = std::get_if<LogRequest>(&*request)) return take_log(*log);
  verbs_.push_back(frame.verb());
  if (auto* reg = std::get_if<RegisterRequest>(&*request)) {
    registrations_.push_back(*reg);
    if (refuse_registrations_) return {serialize_reply(Reply::err("not now")), true};
  } else if (auto* results = std::get_if<ResultsRequest>(&*request)) {
    if (busy_results_) {
      ++busy_answers_;
      return {serialize_reply(Reply::err("busy")), true};
    }
    results_.push_back(*results);
    if (refuse_results_) return {serialize_reply(Reply::err("job 7 is not known")), true};
  } else if (auto* abandon = std::get_if<AbandonRequest>(&*request)) {
    abandoned_.push_back(*abandon);
  } else if (auto* unreg = std::get_if<UnregisterRequest>(&*request)) {
    unregistered_.push_back(*unreg);
  } else {
    return {serialize_reply(Reply::err("unexpected")), true};
  }
  return {serialize_reply(Reply::ok())};
}

Result<Reply> call(uint16_t port, const Frame& frame, const std::string& token) {
  ClientOptions options;
  options.token = token;
  options.service = kRunnerService;
  LineClient client("127.0.0.1", port, options);
  auto reply = client.call_frame(frame);
  if (!reply) return Error{reply.error()};
  return parse_reply(*reply);
}

Result<Reply> call(uint16_t port, const Request& request, const std::string& token) {
  return call(port, serialize_request(request), token);
}

std::string pong(uint16_t port, const std::string& token) {
  auto reply = call(port, Request{PingRequest{}}, token);
  if (!reply) return "no reply: " + reply.error();
  if (reply->kind != Reply::Kind::Pong) return "not a pong";
  return "pong " + reply->reason();
}

Reply::Kind runtest(uint16_t port, JobId job, const std::string& commit, const std::string& token) {
  auto reply = call(port, Request{RuntestRequest{job, 1, commit, "master"}}, token);
  EXPECT_TRUE(reply.ok()) << reply.error();
  return reply ? reply->kind : Reply::Kind::Err;
}

}  // namespace ci::runner::test_peer
