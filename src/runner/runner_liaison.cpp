// The runner's liaison with the dispatcher: the thread that keeps the runner registered
// and delivers the spooled results, with backoff while the dispatcher is away, and
// stop()'s last messages. Its waits are on the runner's Clock; the connections' own
// timeouts (ClientOptions) stay on real time.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ci/auth.h"
#include "runner/runner.h"
#include "runner/runner_internal.h"

namespace ci::runner {
namespace {

// The dispatcher's reply to a message: OK, ERR (refused for good) or a failure to
// reach it (or a reply that makes no sense), with why.
struct Delivery {
  enum class Kind { Ok, Refused, Failed } kind = Kind::Failed;
  std::string why;
};

Delivery ask(LineClient& dispatcher, const Frame& message) {
  auto frame = dispatcher.call_frame(message);
  dispatcher.close();
  if (!frame) return {Delivery::Kind::Failed, frame.error()};
  auto reply = parse_reply(*frame);
  if (!reply) return {Delivery::Kind::Failed, "unreadable reply: " + reply.error()};
  if (reply->kind == Reply::Kind::Ok) return {Delivery::Kind::Ok, ""};
  if (reply->kind == Reply::Kind::Err) return {Delivery::Kind::Refused, reply->reason()};
  return {Delivery::Kind::Failed, "unexpected reply " + serialize(serialize_reply(*reply))};
}

// Logs what became of a result the dispatcher answered for, and takes it out of the
// spool.
void settle(const ResultSpool& spool, const SpooledResult& result, const Delivery& delivery) {
  if (delivery.kind == Delivery::Kind::Ok) {
    spdlog::info("{}: results delivered", describe(result));
  } else if (delivery.kind == Delivery::Kind::Refused) {
    spdlog::warn("{}: the dispatcher refused the results: {}; dropping them", describe(result),
                 delivery.why);
  }
  if (auto removed = spool.remove(result); !removed)
    spdlog::warn("{}: {}", describe(result), removed.error());
}

}  // namespace

void Runner::keep_in_touch() {
  ClientOptions register_options;
  register_options.io_timeout = std::chrono::seconds(5);
  register_options.token = options_.token;
  register_options.service = kDispatcherService;
  ClientOptions deliver_options;
  deliver_options.token = options_.token;
  deliver_options.service = kDispatcherService;
  LineClient registrar(options_.dispatcher.host, options_.dispatcher.port, register_options);
  LineClient courier(options_.dispatcher.host, options_.dispatcher.port, deliver_options);
  MutexLock lock(mu_);
  while (!stopping_) {
    auto now = clock_.now();
    if (registration_.due(now)) {
      register_once(registrar);
      continue;
    }
    // Results go while registered (at start, after the first registration), so that the
    // dispatcher knows the runner they come from.
    bool can_deliver = registration_.registered() && !pending_.empty();
    if (can_deliver && now >= deliver_at_) {
      deliver_oldest(courier);
      continue;
    }
    auto wake = registration_.next_attempt();
    if (can_deliver) wake = std::min(wake, deliver_at_);
    clock_.wait_until(changed_, lock, wake);
  }
}

void Runner::register_once(LineClient& dispatcher) {
  bool renewal = registration_.registered();
  bool first = !ever_registered_;
  Delivery delivery = run_unlocked(mu_, [&] {
    return ask(dispatcher, serialize_request(Request{RegisterRequest{
                               options_.host, port_, static_cast<uint32_t>(running_jobs_.size()),
                               options_.labels, scope()}}));
  });
  auto now = clock_.now();
  if (delivery.kind == Delivery::Kind::Ok) {
    registration_.succeeded(now);
    ever_registered_ = true;
    deliver_at_ = now;  // a dispatcher that was away is back: waiting results go now
    if (first) {
      spdlog::info("registered with the dispatcher at {} as {}", options_.dispatcher.str(),
                   address());
    } else if (renewal) {
      spdlog::info("registered again with the dispatcher at {}: nothing heard from it for {} ms",
                   options_.dispatcher.str(), options_.dispatcher_timeout.count());
    } else {
      spdlog::info("registered again with the dispatcher at {}", options_.dispatcher.str());
    }
    return;
  }
  std::string why =
      delivery.kind == Delivery::Kind::Refused ? "refused: " + delivery.why : delivery.why;
  if (registration_.failed(now)) {
    spdlog::warn("cannot register with the dispatcher at {} ({}); retrying, at most every {} ms",
                 options_.dispatcher.str(), why, options_.retry_max.count());
  }
}

void Runner::deliver_oldest(LineClient& dispatcher) {
  std::shared_ptr<const SpooledResult> result = pending_.front();
  delivering_front_ = true;
  Delivery delivery = run_unlocked(mu_, [&] {
    Delivery d = ask(dispatcher, result->message);
    if (d.kind != Delivery::Kind::Failed) settle(spool_, *result, d);
    return d;
  });
  delivering_front_ = false;
  if (delivery.kind == Delivery::Kind::Failed) {
    if (!delivery_failing_) {
      spdlog::warn("{}: cannot deliver the results ({}); they stay in the spool, retrying",
                   describe(*result), delivery.why);
      delivery_failing_ = true;
    }
    deliver_at_ = clock_.now() + delivery_backoff_.next();
    return;
  }
  pending_.pop_front();  // still `result`: only this thread removes from the front
  delivery_backoff_.reset();
  delivery_failing_ = false;
  deliver_at_ = clock_.now();
  if (pending_.empty() && running() == 0 && !draining_) spdlog::info("idle");
  changed_.notify_all();
  size_t size = result->message.body.size();
  result.reset();
  release_memory(size, mu_);  // the results are handed over: their message is gone
}

void Runner::say_goodbye() {
  // The threads are joined: what is left is this thread's.
  MutexLock lock(mu_);
  const bool was_draining = draining_;
  std::vector<std::pair<RuntestRequest, bool>> killed;  // with whether its test started
  for (const Slot& slot : slots_)
    if (slot.job) killed.emplace_back(*slot.job, slot.started);
  const bool was_registered = ever_registered_;
  std::deque<std::shared_ptr<const SpooledResult>> pending = pending_;
  lock.unlock();

  ClientOptions client_options;
  client_options.connect_timeout = options_.goodbye_timeout;
  client_options.io_timeout = options_.goodbye_timeout;
  client_options.token = options_.token;
  client_options.service = kDispatcherService;
  LineClient dispatcher(options_.dispatcher.host, options_.dispatcher.port, client_options);

  // One try for each waiting result, oldest first, while the dispatcher answers.
  std::string unreachable;
  while (!pending.empty() && unreachable.empty()) {
    const SpooledResult& result = *pending.front();
    Delivery delivery = ask(dispatcher, result.message);
    if (delivery.kind == Delivery::Kind::Failed) {
      unreachable = delivery.why;
      break;
    }
    settle(spool_, result, delivery);
    pending.pop_front();
  }

  for (const auto& [job, test_started] : killed) {
    Delivery delivery = ask(
        dispatcher, serialize_request(Request{AbandonRequest{job.job, job.attempt, address()}}));
    std::string what = test_started ? "killed the test of job " + std::to_string(job.job)
                                    : "did not start job " + std::to_string(job.job);
    if (delivery.kind == Delivery::Kind::Failed) {
      spdlog::warn(
          "stopping: {} but could not give it back ({}); the dispatcher requeues it "
          "once it misses the runner",
          what, delivery.why);
    } else {
      spdlog::info("stopping: {} and gave it back", what);
    }
  }
  if (killed.empty() && was_draining && pending.empty()) {
    spdlog::info("stopping: drained, every result delivered");
  }
  for (const auto& result : pending) {
    spdlog::warn(
        "stopping: {}: results not delivered ({}); they remain in the spool at {} for "
        "the next start",
        describe(*result), unreachable, spool_.dir());
  }

  if (!was_registered && killed.empty()) return;
  Delivery left =
      ask(dispatcher, serialize_request(Request{UnregisterRequest{options_.host, port_}}));
  if (left.kind == Delivery::Kind::Ok) {
    spdlog::info("left the dispatcher at {}", options_.dispatcher.str());
  } else {
    spdlog::warn("could not unregister from the dispatcher at {}: {}", options_.dispatcher.str(),
                 left.why);
  }
}

}  // namespace ci::runner
