// ci-reporter: the CI's reporting: follows the dispatcher's event feed and serves a live
// dashboard, a JSON API, badges and metrics over HTTP; sends notifications.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdlib>
#include <future>
#include <iostream>
#include <thread>

#include "ci/auth.h"
#include "ci/log.h"
#include "ci/signals.h"
#include "reporter/reporter.h"

namespace {

// "host:port" (the last colon separates them, so "[::1]:80" and "::1:80" both work).
bool split_address(const std::string& text, std::string* host, uint16_t* port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  try {
    size_t used = 0;
    unsigned long p = std::stoul(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1 || p > 65535) return false;
    *port = static_cast<uint16_t>(p);
  } catch (const std::exception&) {
    return false;
  }
  *host = text.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  return true;
}

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(std::llround(seconds * 1000));
}

}  // namespace

int main(int argc, char** argv) {
  ci::reporter::ReporterOptions opts;
  std::string dispatcher = "localhost:8888", http = "127.0.0.1:8080", token_file,
              log_level = "info";
  bool insecure = false;
  double poll_wait_s = 25, notify_timeout_s = 10, http_timeout_s = 30, log_timeout_s = 5;

  CLI::App app{
      "ci-reporter: a live dashboard, JSON API, badges, metrics and notifications "
      "from the dispatcher's event feed"};
  app.add_option("--dispatcher-server", dispatcher, "the dispatcher's host:port")
      ->capture_default_str();
  app.add_option("--db", opts.db_path, "the reporter's own SQLite file")->capture_default_str();
  app.add_option("--http", http, "host:port to serve HTTP on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--http-threads", opts.http.threads, "HTTP polling threads")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{64}));
  app.add_option("--http-max-connections", opts.http.max_connections,
                 "HTTP connections at once (event streams included)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  app.add_option("--http-max-connections-per-address", opts.http.max_connections_per_address,
                 "HTTP connections at once from one address")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  app.add_option("--http-timeout", http_timeout_s,
                 "seconds an HTTP connection may stay idle or take to send a request")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--poll-wait", poll_wait_s, "seconds an `events` call waits for news")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 60.0));
  app.add_option("--log-timeout", log_timeout_s, "seconds a log read from the dispatcher may take")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 600.0));
  app.add_option("--notify-webhook", opts.notify.webhooks,
                 "URL to POST JSON to when a job finishes or a branch changes state (repeatable)");
  app.add_option("--notify-command", opts.notify.commands,
                 "shell command to run for each notification, with the JSON on stdin and "
                 "CI_EVENT, CI_JOB_ID, CI_BRANCH, CI_COMMIT, CI_STATUS... set (repeatable)");
  app.add_option("--notify-timeout", notify_timeout_s, "seconds each delivery attempt may take")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--notify-attempts", opts.notify.max_attempts,
                 "attempts to deliver a notification before it is dropped (logged)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--token-file", token_file,
                 "file holding the shared token: proved to the dispatcher, and required of "
                 "HTTP clients as 'Authorization: Bearer <token>' (default: $CI_TOKEN_FILE, if "
                 "set)");
  app.add_flag("--insecure", insecure, "allow a non-loopback --http address without a token");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (auto r = ci::setup_logging("ci-reporter", log_level); !r) {
    std::cerr << "ci-reporter: " << r.error() << "\n";
    return 2;
  }
  if (!split_address(dispatcher, &opts.feed.host, &opts.feed.port)) {
    spdlog::error("--dispatcher-server {}: not host:port", dispatcher);
    return 2;
  }
  if (!split_address(http, &opts.http.host, &opts.http.port)) {
    spdlog::error("--http {}: not host:port", http);
    return 2;
  }
  auto token = ci::load_token(token_file);
  if (!token) {
    spdlog::error("--token-file: {}", token.error());
    return 2;
  }
  opts.feed.token = opts.http_token = *token;
  if (auto r = ci::check_bind_policy(opts.http.host, !token->empty(), insecure,
                                     "read every job, log and test result");
      !r) {
    spdlog::error("--http {}: {}", http, r.error());
    return 2;
  }
  opts.feed.wait = ms(poll_wait_s);
  opts.notify.timeout = ms(notify_timeout_s);
  opts.http.timeout = std::chrono::seconds(std::llround(http_timeout_s));
  opts.log_timeout = ms(log_timeout_s);

  ci::block_stop_signals();
  ci::raise_open_file_limit();
  ci::reporter::Reporter reporter(opts);
  if (auto r = reporter.start(); !r) {
    spdlog::error("{}", r.error());
    return 1;
  }
  spdlog::info("ci-reporter listening on {}:{}, following {}, read model in {}{}", opts.http.host,
               reporter.http_port(), dispatcher, opts.db_path,
               token->empty() ? "" : ", token required");
  int sig = ci::wait_for_stop_signal();
  spdlog::info("{} received, stopping", ci::signal_name(sig));
  // The follower may be inside an `events` call that waits up to --poll-wait for news.
  // Every change to the read model is a transaction (a kill at any moment loses nothing
  // and applies nothing twice), so after a short grace the process ends without it.
  std::promise<void> stopped;
  auto done = stopped.get_future();
  std::thread([&reporter, &stopped] {
    reporter.stop();
    stopped.set_value();
  }).detach();
  if (done.wait_for(std::chrono::seconds(2)) != std::future_status::ready)
    spdlog::info("stopped (a feed call in progress was left)");
  else
    spdlog::info("stopped");
  // Ends without static destructors: the HTTP library's and the follower's threads may
  // still be ending, and must not meet the logger's registry being torn down.
  spdlog::default_logger()->flush();
  std::_Exit(0);
}
