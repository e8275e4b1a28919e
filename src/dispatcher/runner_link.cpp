#include "dispatcher/runner_link.h"

#include "ci/auth.h"
#include "ci/replies.h"
#include "ci/validate.h"

namespace ci {

namespace {

// Bounded: runners come and go.
constexpr size_t kMaxPooled = 4096;

}  // namespace

std::unique_ptr<LineClient> RunnerLink::take(const std::string& runner) {
  {
    MutexLock lock(mutex_);
    auto it = clients_.find(runner);
    if (it != clients_.end()) {
      auto client = std::move(it->second);
      clients_.erase(it);
      return client;
    }
  }
  auto hp = parse_host_port(runner);
  ClientOptions co;
  co.connect_timeout = options_.connect_timeout;
  co.io_timeout = options_.io_timeout;
  co.token = options_.token;
  co.service = kRunnerService;
  return std::make_unique<LineClient>(hp ? hp->host : "", hp ? hp->port : 0, co);
}

void RunnerLink::give(const std::string& runner, std::unique_ptr<LineClient> client) {
  MutexLock lock(mutex_);
  if (clients_.size() >= kMaxPooled) clients_.clear();
  clients_.emplace(runner, std::move(client));
}

void RunnerLink::keep_only(const std::set<std::string>& runners) {
  MutexLock lock(mutex_);
  std::erase_if(clients_, [&](const auto& entry) { return !runners.count(entry.first); });
}

RunnerLink::PingAnswer RunnerLink::ping(const std::string& runner) {
  auto client = take(runner);
  auto reply = client->call(PingRequest{});
  // Out of connection slots (a test flooding its runner's port, say), the runner is
  // there: nothing learned, and not a miss either.
  const bool slots_full = !reply && client->busy();
  give(runner, std::move(client));

  PingAnswer answer;
  if (slots_full) {
    answer.kind = PingAnswer::Kind::SlotsFull;
    return answer;
  }
  if (!reply) {
    answer.why = reply.error();
    return answer;
  }
  auto pong = parse_pong_reply(*reply);
  if (!pong) {
    answer.why = pong.error();
    return answer;
  }
  answer.kind = PingAnswer::Kind::Report;
  answer.report.known = pong->state != PongReply::State::Alive;
  answer.report.busy = pong->state == PongReply::State::Busy;
  answer.report.job = pong->job;
  answer.report.attempt = pong->attempt;
  if (pong->state == PongReply::State::Slots) {
    std::vector<std::pair<JobId, uint32_t>> busy;
    for (const SlotJob& s : pong->slots)
      if (s.job) busy.push_back({s.job, s.attempt});
    answer.report.busy = !busy.empty();
    answer.report.slots = std::move(busy);
  }
  return answer;
}

RunnerLink::RuntestAnswer RunnerLink::runtest(const Offer& offer) {
  auto client = take(offer.runner);
  auto reply = client->call(
      RuntestRequest{offer.job, offer.attempt, offer.commit, offer.branch, offer.repo, offer.url});
  // Out of connection slots, the runner is alive: as BUSY, not against the runner.
  const bool slots_full = !reply && client->busy();
  give(offer.runner, std::move(client));
  if (reply && reply->kind == Reply::Kind::Ok) return {RuntestAnswer::Kind::Accepted, ""};
  if (slots_full || (reply && reply->kind == Reply::Kind::Busy))
    return {RuntestAnswer::Kind::Busy, ""};
  if (reply) return {RuntestAnswer::Kind::Rejected, reply->reason()};
  return {RuntestAnswer::Kind::Unreachable, reply.error()};
}

Result<void> RunnerLink::cancel(const std::string& runner, JobId job, uint32_t attempt) {
  auto client = take(runner);
  auto reply = client->call(CancelRequest{job, attempt});
  give(runner, std::move(client));
  if (!reply) return Error{reply.error()};
  if (reply->kind != Reply::Kind::Ok) return Error{reply->reason()};
  return {};
}

}  // namespace ci
