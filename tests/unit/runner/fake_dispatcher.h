// A dispatcher reduced to what a runner needs, for the runner's tests: it records what
// runners send (register, results, abandon, unregister) in order and answers OK, or ERR
// to results when told to. Also small clients for talking to a runner.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ci/net.h"
#include "ci/protocol.h"

namespace ci::runner::test_peer {

class FakeDispatcher {
 public:
  ~FakeDispatcher() { stop(); }

  // On `port`, or an ephemeral one; fails the current test if it cannot listen. With a
  // token, every peer must prove it.
  void start(uint16_t port = 0, const std::string& token = "");
  void stop();
  uint16_t port() const { return port_; }

  void refuse_results();
  std::vector<RegisterRequest> registrations();
  std::vector<ResultsRequest> results();
  std::vector<AbandonRequest> abandoned();
  std::vector<UnregisterRequest> unregistered();
  std::vector<std::string> verbs();  // every message's verb, in the order received

 private:
  Response handle(const Frame& frame);

  std::unique_ptr<LineServer> server_;
  uint16_t port_ = 0;
  std::mutex mu_;
  bool refuse_results_ = false;
  std::vector<std::string> verbs_;
  std::vector<RegisterRequest> registrations_;
  std::vector<ResultsRequest> results_;
  std::vector<AbandonRequest> abandoned_;
  std::vector<UnregisterRequest> unregistered_;
};

// A port that was free a moment ago, for a dispatcher started after the runner.
uint16_t reserve_port();

// Each on a new connection, proving `token` when one is given.
Result<Reply> call(uint16_t port, const Frame& frame, const std::string& token = "");
Result<Reply> call(uint16_t port, const Request& request, const std::string& token = "");
// "pong idle", "pong busy <job> <attempt>", or what went wrong.
std::string pong(uint16_t port, const std::string& token = "");
Reply::Kind runtest(uint16_t port, JobId job, const std::string& commit,
                    const std::string& token = "");

}  // namespace ci::runner::test_peer
