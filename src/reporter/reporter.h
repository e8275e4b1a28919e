// ci-reporter: follows the dispatcher's event feed into a read model of its own and
// serves it over HTTP (dashboard, JSON API, event stream, badges, metrics), sending
// notifications of finished jobs and of branches that change state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ci/result.h"
#include "reporter/feed_follower.h"
#include "reporter/http_server.h"
#include "reporter/notifier.h"

namespace ci::reporter {

struct ReporterOptions {
  std::string db_path = "reporter.db";
  FollowerOptions feed;  // the dispatcher, with its token
  HttpOptions http;
  std::string http_token;  // non-empty: the API, metrics and badges require it
  NotifyOptions notify;
  std::chrono::milliseconds log_timeout{5000};  // of a logread from the dispatcher
  std::chrono::milliseconds keepalive{15000};   // a comment line to each event stream
};

class Reporter {
 public:
  explicit Reporter(ReporterOptions options);
  ~Reporter();
  Reporter(const Reporter&) = delete;
  Reporter& operator=(const Reporter&) = delete;

  Result<void> start();
  uint16_t http_port() const;
  // Stops the HTTP server, the notifier and the follower. Idempotent.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ci::reporter
