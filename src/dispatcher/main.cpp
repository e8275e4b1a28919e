// ci-dispatcher: keeps the job queue, hands jobs to runners, records results.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <iostream>

#include "ci/auth.h"
#include "ci/log.h"
#include "ci/signals.h"
#include "dispatcher/dispatcher.h"

int main(int argc, char** argv) {
  ci::DispatcherOptions opts;
  std::string log_level = "info";
  double heartbeat_s = 2.0, idle_timeout_s = 10.0, auth_timeout_s = 5.0;

  CLI::App app{"ci-dispatcher: hands commits to test runners and records their results"};
  app.add_option("--host", opts.host, "address to listen on")->capture_default_str();
  app.add_option("--port", opts.port, "port to listen on (0: any free port)")
      ->capture_default_str();
  app.add_option("--results-dir", opts.results_dir, "folder for the result files")
      ->capture_default_str();
  app.add_option("--state-dir", opts.state_dir,
                 "folder of the state database (state.db); ':memory:' keeps no state")
      ->capture_default_str();
  std::string sync = "normal";
  app.add_option("--sync", sync,
                 "normal: state survives any crash of the process; full: also power loss")
      ->capture_default_str()
      ->check(CLI::IsMember({"normal", "full"}));
  app.add_option("--heartbeat-interval", heartbeat_s, "seconds between pings to each runner")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  app.add_option("--heartbeat-misses", opts.heartbeat_misses,
                 "missed pings in a row before a runner is dropped")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--max-attempts", opts.max_attempts,
                 "attempts lost to dead runners before a job ends as an error")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--max-body", opts.max_body, "largest message body accepted, in bytes")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  app.add_option("--idle-timeout", idle_timeout_s,
                 "seconds a connection may take to send a whole message")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  app.add_option("--max-connections", opts.max_connections, "connections served at once")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  app.add_option("--auth-timeout", auth_timeout_s,
                 "with a token: seconds a new connection has to authenticate (at most "
                 "--idle-timeout)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  app.add_option("--max-unauthenticated-per-address", opts.max_unauthenticated_per_address,
                 "with a token: connections from one address not authenticated yet; more are "
                 "answered ERR busy")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  app.add_option("--body-budget", opts.body_budget,
                 "bytes of message bodies received at once over all connections (at least "
                 "--max-body); a body that does not fit waits")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 40));
  app.add_option("--event-retention", opts.event_retention,
                 "events the feed keeps for its readers (a reader further behind takes a "
                 "snapshot)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{100}, uint64_t{1} << 40));
  app.add_option("--log-dir", opts.log_dir,
                 "folder of the jobs' live logs (default: <state-dir>/logs)");
  uint64_t log_cap = opts.log_head_bytes + opts.log_tail_bytes;
  app.add_option("--log-cap", log_cap,
                 "bytes of a job's log kept: its first and last halves, the middle omitted")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 40));
  app.add_flag("--cancel-superseded", opts.cancel_superseded,
               "a newer commit queued on a branch cancels the branch's queued jobs (off: "
               "every commit is tested)");
  std::string token_file;
  bool insecure = false;
  app.add_option("--token-file", token_file,
                 "file holding the shared token every peer must prove (default: "
                 "$CI_TOKEN_FILE, if set)");
  app.add_flag("--insecure", insecure, "allow a non-loopback --host without a token");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  opts.sync = sync == "full" ? ci::SyncMode::Full : ci::SyncMode::Normal;
  opts.log_head_bytes = log_cap / 2;
  opts.log_tail_bytes = log_cap - log_cap / 2;
  opts.heartbeat_interval = std::chrono::milliseconds(std::llround(heartbeat_s * 1000));
  opts.idle_timeout = std::chrono::milliseconds(std::llround(idle_timeout_s * 1000));
  opts.auth_timeout = std::chrono::milliseconds(std::llround(auth_timeout_s * 1000));
  if (auto r = ci::setup_logging("ci-dispatcher", log_level); !r) {
    std::cerr << "ci-dispatcher: " << r.error() << "\n";
    return 2;
  }
  if (opts.body_budget < opts.max_body) {
    spdlog::error("--body-budget {} is less than --max-body {}: a body that large could never fit",
                  opts.body_budget, opts.max_body);
    return 2;
  }
  auto token = ci::load_token(token_file);
  if (!token) {
    spdlog::error("--token-file: {}", token.error());
    return 2;
  }
  opts.token = *token;
  if (auto r = ci::check_bind_policy(opts.host, !opts.token.empty(), insecure); !r) {
    spdlog::error("--host {}: {}", opts.host, r.error());
    return 2;
  }
  ci::block_stop_signals();
  ci::raise_open_file_limit();
  ci::Dispatcher dispatcher(opts);
  if (auto r = dispatcher.start(); !r) {
    spdlog::error("{}", r.error());
    return 1;
  }
  spdlog::info("ci-dispatcher listening on {}:{}, results in {}/, state in {}{}", opts.host,
               dispatcher.port(), opts.results_dir, opts.state_dir,
               opts.token.empty() ? "" : ", token required");
  int sig = ci::wait_for_stop_signal();
  spdlog::info("{} received, stopping", ci::signal_name(sig));
  dispatcher.stop();
  spdlog::info("stopped");
  return 0;
}
