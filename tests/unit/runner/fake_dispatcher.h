// A dispatcher reduced to what a runner needs, for the runner's tests: it records what
// runners send (register, results, abandon, unregister) in order and answers OK, or,
// when told to, ERR to results or registrations, or "ERR busy" (which a runner takes
// for a dispatcher it could not reach) to results. Live logs are put together as the
// dispatcher does, and answered "OK <received>" (or ERR when told to). Also small
// clients for talking to a runner.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ci/mutex.h"
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
  // Registrations are answered ERR while `refuse` (and still recorded).
  void refuse_registrations(bool refuse);
  // Results are answered "ERR busy" while `busy` (and counted, not recorded).
  void busy_results(bool busy);
  size_t busy_answers();
  std::vector<RegisterRequest> registrations();
  std::vector<ResultsRequest> results();
  // Waits (with the tests' deadline) for the first results of `job`; a test failure and
  // an empty request if none come.
  ResultsRequest result_of(JobId job);
  std::vector<AbandonRequest> abandoned();
  std::vector<UnregisterRequest> unregistered();
  // Every message's verb, in the order received; live logs, which come at any time,
  // are left out.
  std::vector<std::string> verbs();
  // Log messages are answered ERR while `refuse`.
  void refuse_logs(bool refuse);
  // The live log of an attempt as received, "[N bytes omitted]" where the runner
  // dropped bytes; and how many log messages came.
  std::string log(JobId job, uint32_t attempt);
  size_t log_messages();

 private:
  Response handle(const Frame& frame);

  std::unique_ptr<LineServer> server_;
  uint16_t port_ = 0;
  Mutex mu_;
  bool refuse_results_ GUARDED_BY(mu_) = false;
  bool refuse_registrations_ GUARDED_BY(mu_) = false;
  bool busy_results_ GUARDED_BY(mu_) = false;
  size_t busy_answers_ GUARDED_BY(mu_) = 0;
  std::vector<std::string> verbs_ GUARDED_BY(mu_);
  std::vector<RegisterRequest> registrations_ GUARDED_BY(mu_);
  std::vector<ResultsRequest> results_ GUARDED_BY(mu_);
  std::vector<AbandonRequest> abandoned_ GUARDED_BY(mu_);
  std::vector<UnregisterRequest> unregistered_ GUARDED_BY(mu_);
  struct Log {
    std::string text;
    uint64_t received = 0;
  };
  Response take_log(const LogRequest& request) REQUIRES(mu_);
  bool refuse_logs_ GUARDED_BY(mu_) = false;
  std::map<std::pair<JobId, uint32_t>, Log> logs_ GUARDED_BY(mu_);
  size_t log_messages_ GUARDED_BY(mu_) = 0;
};

// Each on a new connection, proving `token` when one is given.
Result<Reply> call(uint16_t port, const Frame& frame, const std::string& token = "");
Result<Reply> call(uint16_t port, const Request& request, const std::string& token = "");
// "pong idle", "pong busy <job> <attempt>", or what went wrong.
std::string pong(uint16_t port, const std::string& token = "");
Reply::Kind runtest(uint16_t port, JobId job, const std::string& commit,
                    const std::string& token = "");

}  // namespace ci::runner::test_peer
