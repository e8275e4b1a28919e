// A dispatcher reduced to what the observer needs, on a real TCP port: it answers
// `status` with OK and a body, `dispatch` with `OK <n>`, and records the dispatches.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ci/net.h"
#include "ci/protocol.h"

namespace ci::observer::test {

class FakeDispatcher {
 public:
  struct Dispatch {
    std::string commit;
    std::string branch;
  };

  ~FakeDispatcher() { stop(); }

  // port 0: an ephemeral port; otherwise the port of an earlier start.
  bool start(uint16_t port = 0) {
    ServerOptions options;
    options.port = port;
    server_ = std::make_unique<LineServer>(
        options, request_has_body,
        [this](const Frame& frame, const std::string&) { return answer(frame); });
    auto r = server_->start();
    if (!r) return false;
    port_ = server_->port();
    return true;
  }

  void stop() {
    if (server_) server_->stop();
  }

  uint16_t port() const { return port_; }

  std::vector<Dispatch> dispatches() const {
    std::lock_guard lock(mu_);
    return dispatches_;
  }
  std::vector<std::string> commits() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& d : dispatches_) out.push_back(d.commit);
    return out;
  }
  size_t status_calls() const {
    std::lock_guard lock(mu_);
    return status_calls_;
  }
  // While set, `status` is answered ERR, as by a dispatcher that is not ready.
  void set_not_ready(bool not_ready) {
    std::lock_guard lock(mu_);
    not_ready_ = not_ready;
  }

 private:
  Response answer(const Frame& frame) {
    auto request = parse_request(frame);
    if (!request) return {serialize_reply(Reply::err(request.error())), true};
    std::lock_guard lock(mu_);
    if (std::holds_alternative<StatusRequest>(*request)) {
      ++status_calls_;
      if (not_ready_) return {serialize_reply(Reply::err("not ready")), false};
      return {serialize_reply(Reply::ok_with_body("runners 0\nqueued 0\n")), false};
    }
    if (auto* d = std::get_if<DispatchRequest>(&*request)) {
      dispatches_.push_back({d->commit, d->branch});
      return {serialize_reply(Reply::ok({std::to_string(dispatches_.size())})), false};
    }
    return {serialize_reply(Reply::err("unexpected request")), true};
  }

  std::unique_ptr<LineServer> server_;
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::vector<Dispatch> dispatches_;
  size_t status_calls_ = 0;
  bool not_ready_ = false;
};

}  // namespace ci::observer::test
