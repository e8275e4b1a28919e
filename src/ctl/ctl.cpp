#include "ctl/ctl.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <optional>
#include <ostream>
#include <sstream>

#include "ci/auth.h"
#include "ci/net.h"
#include "ci/validate.h"

namespace ci {

namespace {

// Where a failure goes: a line on stderr, and with --json also {"error": ...} on stdout,
// so that a script reading stdout always gets one object.
struct Report {
  std::ostream& out;
  std::ostream& err;
  bool json = false;

  int fail(int code, const std::string& reason, const std::string& hint = {}) const {
    err << "cictl: " << reason << "\n" << hint;
    if (json) out << error_json(reason);
    return code;
  }
};

// Prints a parsed query answer as a table or as JSON; a malformed answer is a failure.
template <typename T>
int print_answer(const Report& report, const char* peer, const Result<T>& parsed,
                 std::string (*table)(const T&), std::string (*json)(const T&)) {
  if (!parsed) return report.fail(1, std::string(peer) + " answered badly: " + parsed.error());
  report.out << (report.json ? json(*parsed) : table(*parsed));
  return 0;
}

}  // namespace

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
  bool json = false;
  app.add_flag("--json", json, "print one JSON object (errors too: {\"error\": ...})");
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

  // Known before parsing: a usage error is reported as JSON too.
  Report report{out, err, std::find(args.begin(), args.end(), "--json") != args.end()};
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
      if (!known)
        return report.fail(2, "unknown option '" + name + "'",
                           "Run with --help for more information.\n");
    }
    std::ostringstream o, e2;
    int code = app.exit(e, o, e2);
    out << o.str();
    if (code == 0) return 0;
    err << e2.str();
    if (report.json) out << error_json(e.what());
    return 2;
  }
  report.json = json;

  std::string why;
  const std::string& target = *notify ? observer : server;
  auto hp = parse_host_port(target, &why);
  if (!hp)
    return report.fail(2, std::string(*notify ? "--observer" : "--dispatcher-server") + " '" +
                              target + "': " + why);
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
    if (std::string bad = check_commit_id(commit); !bad.empty())
      return report.fail(2, "'" + commit + "': " + bad);
    if (std::string bad = check_branch_name(branch); !bad.empty())
      return report.fail(2, "--branch '" + branch + "': " + bad);
    request = DispatchRequest{normalize_commit_id(commit), branch};
  }

  auto token = load_token(token_file);
  if (!token) return report.fail(2, "--token-file: " + token.error());
  ClientOptions co;
  co.token = *token;
  co.service = *notify ? kObserverService : kDispatcherService;
  co.io_timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  co.connect_timeout = std::min(co.io_timeout, std::chrono::milliseconds(5000));
  LineClient client(hp->host, hp->port, co);
  auto reply = client.call(request);
  const char* peer = *notify ? "the observer" : "the dispatcher";
  if (!reply && client.busy())
    return report.fail(3, std::string(peer) + " is busy (too many connections); try again");
  if (!reply) return report.fail(1, reply.error());
  if (reply->kind != Reply::Kind::Ok)
    return report.fail(1, std::string(peer) + " answered: " +
                              (reply->kind == Reply::Kind::Err ? "ERR " : "") + reply->reason());
  if (*status)
    return print_answer(report, peer, parse_status_reply(*reply), status_table, status_json);
  if (*runners)
    return print_answer(report, peer, parse_runners_reply(*reply), runners_table, runners_json);
  if (*jobs) return print_answer(report, peer, parse_jobs_reply(*reply), jobs_table, jobs_json);
  if (*dispatch || *retry) {
    auto job = reply->args.size() == 1 ? parse_u64(reply->args[0], INT64_MAX) : std::nullopt;
    if (!job || *job == 0)
      return report.fail(1, std::string(peer) + " answered OK without a job id");
    out << (report.json ? job_json(*job) : "job " + std::to_string(*job) + "\n");
    return 0;
  }
  // notify: quiet on success without --json, for it runs from git hooks.
  if (report.json) out << ok_json();
  return 0;
}

}  // namespace ci
