// ci-observer: watches a repository and hands each new commit to the dispatcher.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ci/auth.h"
#include "ci/log.h"
#include "ci/signals.h"
#include "ci/validate.h"
#include "observer/observer.h"
#include "observer/poke_listener.h"

namespace {

int usage_error(const std::string& flag, const std::string& why) {
  std::cerr << "ci-observer: " << flag << ": " << why
            << "\nRun with --help for more information.\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ci-observer: watches a repository and hands each new commit to the dispatcher"};
  std::string dispatcher = "localhost:8888";
  double interval = 5.0;
  std::vector<std::string> branches;
  bool latest_only = false;
  std::string state_file;
  size_t max_new_commits = ci::observer::CommitTracker::kDefaultMaxNewCommits;
  std::string log_level = "info";
  std::string repo;
  app.add_option("--dispatcher-server", dispatcher, "The dispatcher's address, host:port")
      ->capture_default_str();
  app.add_option("--interval", interval, "Seconds between polls (fractions allowed)")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  app.add_option("--branch", branches, "A branch to watch (repeat for more; default: all)")
      ->allow_extra_args(false);
  app.add_flag("--latest-only", latest_only,
               "Hand over only each changed branch's newest commit, not every new commit");
  app.add_option("--max-new-commits", max_new_commits,
                 "A branch with more new commits in one round hands over only its newest this "
                 "many (its tip among them) and logs what it skipped")
      ->check(CLI::Range(size_t{1}, size_t{100000000}))
      ->capture_default_str();
  app.add_option("--state-file", state_file,
                 "Where to remember what was handed over (default: REPO/.git/ci-observer.state)");
  std::string listen;
  bool insecure = false;
  app.add_option("--listen", listen,
                 "host:port to listen on for `poll` pokes from git hooks (cictl notify)");
  app.add_flag("--insecure", insecure, "allow a non-loopback --listen without a token");
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "File holding the shared token (default: $CI_TOKEN_FILE, if set)");
  std::string name, url;
  std::vector<std::string> required;
  bool newest_first = false;
  app.add_option("--name", name,
                 "Serve a named repository by this name (default, when --url is given: the "
                 "URL's last path component without .git). Without --name and --url the "
                 "observer serves the default repository");
  app.add_option("--url", url,
                 "Where runners fetch the named repository from (default, when --name is "
                 "given: the clone's origin URL, or the repository's own path)");
  app.add_option("--require", required,
                 "A label every job of this repository requires (repeat for more); a "
                 "commit's .ci/labels file adds its own")
      ->allow_extra_args(false);
  app.add_flag("--newest-first", newest_first,
               "Ask the dispatcher to test a branch's newest queued commit before its backlog "
               "(a named repository only)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_option("REPO", repo, "The observer's clone of the master repository")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  ci::observer::ObserverOptions options;
  std::string why;
  auto address = ci::parse_host_port(dispatcher, &why);
  if (!address) return usage_error("--dispatcher-server", why);
  options.dispatcher = *address;
  for (const auto& branch : branches) {
    if (auto bad = ci::check_branch_name(branch); !bad.empty())
      return usage_error("--branch", "'" + ci::escape_for_log(branch) + "': " + bad);
  }
  if (!name.empty()) {
    if (auto bad = ci::check_repo_name(name); !bad.empty())
      return usage_error("--name", "'" + ci::escape_for_log(name) + "': " + bad);
  }
  if (!url.empty()) {
    if (auto bad = ci::check_repo_url(url); !bad.empty())
      return usage_error("--url", "'" + ci::escape_for_log(url) + "': " + bad);
    if (name.empty()) {
      auto derived = ci::observer::repo_name_from_url(url);
      if (!derived) return usage_error("--url", derived.error() + "; give --name");
    }
  }
  if (newest_first && name.empty() && url.empty())
    return usage_error("--newest-first",
                       "only for a named repository (give --name or --url); the default "
                       "repository's order is oldest first");
  for (const auto& label : required) {
    if (auto bad = ci::check_label(label); !bad.empty())
      return usage_error("--require", "'" + ci::escape_for_log(label) + "': " + bad);
  }
  if (!required.empty()) {
    auto labels = ci::parse_label_list(ci::join_labels(required), &why);
    if (!labels) return usage_error("--require", why);
    required = *labels;
  }
  options.repo = repo;
  options.repo_name = name;
  options.repo_url = url;
  options.newest_first = newest_first;
  options.required = required;
  options.branches = branches;
  options.interval = std::chrono::milliseconds(std::llround(interval * 1000.0));
  options.mode =
      latest_only ? ci::observer::DispatchMode::LatestOnly : ci::observer::DispatchMode::PerCommit;
  options.state_file = state_file;
  options.max_new_commits = max_new_commits;
  auto token = ci::load_token(token_file);
  if (!token) return usage_error("--token-file", token.error());
  options.client.token = *token;
  options.client.service = ci::kDispatcherService;
  std::optional<ci::HostPort> listen_at;
  if (!listen.empty()) {
    // Port 0 asks for any free port (the log says which).
    bool any_port = listen.size() > 2 && listen.compare(listen.size() - 2, 2, ":0") == 0;
    listen_at =
        ci::parse_host_port(any_port ? listen.substr(0, listen.size() - 1) + "1" : listen, &why);
    if (!listen_at) return usage_error("--listen", why);
    if (any_port) listen_at->port = 0;
    if (auto r = ci::check_bind_policy(listen_at->host, !token->empty(), insecure,
                                       "make it fetch its repository at will");
        !r)
      return usage_error("--listen", r.error());
  }

  // Before any thread starts, so that every thread inherits the mask.
  ci::block_stop_signals();

  if (auto r = ci::setup_logging("ci-observer", log_level); !r)
    return usage_error("--log-level", r.error());

  try {
    ci::observer::Observer observer(options);
    if (auto r = observer.start(); !r) {
      spdlog::error("{}", r.error());
      return 1;
    }
    std::unique_ptr<ci::observer::PokeListener> listener;
    if (listen_at) {
      ci::ServerOptions so;
      so.host = listen_at->host;
      so.port = listen_at->port;
      so.token = *token;
      so.service = ci::kObserverService;
      listener = std::make_unique<ci::observer::PokeListener>(so, [&] { observer.poll_now(); });
      if (auto r = listener->start(); !r) {
        spdlog::error("--listen: {}", r.error());
        return 1;
      }
      spdlog::info("listening on {}:{} for poll pokes", listen_at->host, listener->port());
    }
    int sig = ci::wait_for_stop_signal();
    spdlog::info("received {}, stopping", ci::signal_name(sig));
    if (listener) listener->stop();
    observer.stop();
    spdlog::info("stopped");
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
  return 0;
}
