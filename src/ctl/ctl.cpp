#include "ctl/ctl.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <ostream>
#include <sstream>

#include "ci/auth.h"
#include "ci/net.h"
#include "ci/validate.h"

namespace ci {

std::string align_columns(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::vector<std::string> row;
    for (std::string w; words >> w;) row.push_back(w);
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

int run_ctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"cictl: ask the CI dispatcher what it is doing, or give it work"};
  app.name("cictl");
  std::string server = "localhost:8888";
  double timeout_s = 10;
  app.add_option("--dispatcher-server", server, "dispatcher host:port")->capture_default_str();
  std::string token_file;
  app.add_option("--token-file", token_file,
                 "file holding the shared token (default: $CI_TOKEN_FILE, if set)");
  app.add_option("--timeout", timeout_s, "seconds to wait for an answer")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  app.require_subcommand(1);
  app.fallthrough();  // global options may also come after the subcommand
  auto* notify = app.add_subcommand("notify", "make the observer fetch and look now");
  std::string observer = "localhost:8887";
  notify->add_option("--observer", observer, "the observer's --listen address")
      ->capture_default_str();
  auto* retry = app.add_subcommand("retry", "run a finished job again");
  uint64_t retry_job = 0;
  retry->add_option("job", retry_job, "the job id")
      ->required()
      ->check(CLI::Range(uint64_t{1}, uint64_t{INT64_MAX}));
  auto* status = app.add_subcommand("status", "the dispatcher's counters");
  auto* runners = app.add_subcommand("runners", "the registered runners");
  auto* jobs = app.add_subcommand("jobs", "the newest jobs");
  uint64_t limit = 50;
  jobs->add_option("--limit", limit, "how many jobs (the dispatcher lists at most 10,000)")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1000000}));
  auto* dispatch = app.add_subcommand("dispatch", "queue a commit for testing");
  std::string commit, branch = "manual";
  dispatch->add_option("commit", commit, "the commit id (40 or 64 hex digits)")->required();
  dispatch->add_option("--branch", branch, "the branch it is on")->capture_default_str();

  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    // CLI11 reports a missing subcommand before an unknown flag: name the flag first.
    for (const auto& arg : args) {
      if (arg.size() < 2 || arg[0] != '-' || arg == "--help" || arg == "-h") continue;
      std::string name = arg.substr(0, arg.find('='));
      bool known = app.get_option_no_throw(name) != nullptr;
      for (auto* sub : app.get_subcommands({}))
        known = known || sub->get_option_no_throw(name) != nullptr;
      if (!known) {
        err << "cictl: unknown option '" << name << "'\nRun with --help for more information.\n";
        return 2;
      }
    }
    std::ostringstream o, e2;
    int code = app.exit(e, o, e2);
    out << o.str();
    err << e2.str();
    return code == 0 ? 0 : 2;
  }

  std::string why;
  const std::string& target = *notify ? observer : server;
  auto hp = parse_host_port(target, &why);
  if (!hp) {
    err << "cictl: " << (*notify ? "--observer" : "--dispatcher-server") << " '" << target
        << "': " << why << "\n";
    return 2;
  }
  Request request;
  if (*status) {
    request = StatusRequest{};
  } else if (*runners) {
    request = RunnersRequest{};
  } else if (*jobs) {
    request = JobsRequest{limit};
  } else if (*retry) {
    request = RetryRequest{retry_job};
  } else if (*notify) {
    request = PollRequest{};
  } else {
    if (std::string bad = check_commit_id(commit); !bad.empty()) {
      err << "cictl: '" << commit << "': " << bad << "\n";
      return 2;
    }
    if (std::string bad = check_branch_name(branch); !bad.empty()) {
      err << "cictl: --branch '" << branch << "': " << bad << "\n";
      return 2;
    }
    request = DispatchRequest{normalize_commit_id(commit), branch};
  }

  auto token = load_token(token_file);
  if (!token) {
    err << "cictl: --token-file: " << token.error() << "\n";
    return 2;
  }
  ClientOptions co;
  co.token = *token;
  co.service = *notify ? kObserverService : kDispatcherService;
  co.io_timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  co.connect_timeout = std::min(co.io_timeout, std::chrono::milliseconds(5000));
  LineClient client(hp->host, hp->port, co);
  auto reply = client.call(request);
  if (!reply && client.busy()) {
    err << "cictl: " << (*notify ? "the observer" : "the dispatcher")
        << " is busy (too many connections); try again\n";
    return 3;
  }
  if (!reply) {
    err << "cictl: " << reply.error() << "\n";
    return 1;
  }
  if (reply->kind != Reply::Kind::Ok) {
    err << "cictl: " << (*notify ? "the observer" : "the dispatcher")
        << " answered: " << (reply->kind == Reply::Kind::Err ? "ERR " : "") << reply->reason()
        << "\n";
    return 1;
  }
  if (*notify) {
    // Quiet on success: it runs from git hooks.
  } else if (*dispatch || *retry) {
    out << "job " << (reply->args.empty() ? "?" : reply->args[0]) << "\n";
  } else {
    out << align_columns(reply->body);
  }
  return 0;
}

}  // namespace ci
