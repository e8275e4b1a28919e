#include "ctl/ctl.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <optional>
#include <ostream>
#include <sstream>

#include "ci/auth.h"
#include "ci/net.h"
#include "ci/validate.h"
#include "ctl/commands.h"

namespace ci {

namespace {

constexpr char kExitCodes[] = R"(Exit codes:
  0  done; dispatch --wait: the job passed
  1  the dispatcher (or observer) refused, answered badly or could not be reached;
     dispatch --wait: the job failed
  2  bad usage: an unknown command or option, a bad argument;
     dispatch --wait: the job ended in an error or a timeout
  3  the dispatcher is busy (at its connection limit: nothing was done, try again);
     dispatch --wait: the job was cancelled
)";

// Prints a parsed query answer as a table or as JSON; a malformed answer is a failure.
template <typename T>
int print_answer(const Report& report, const std::string& peer, const Result<T>& parsed,
                 std::string (*table)(const T&), std::string (*json)(const T&)) {
  if (!parsed) return report.fail(1, peer + " answered badly: " + parsed.error());
  report.out << (report.json ? json(*parsed) : table(*parsed));
  return 0;
}

CLI::Option* add_job(CLI::App* sub, JobId& job) {
  return sub->add_option("job", job, "the job id")
      ->required()
      ->check(CLI::Range(uint64_t{1}, uint64_t{INT64_MAX}));
}

// The global options and every command, bound to where their values go.
struct Cli {
  CLI::App app{"cictl: ask the CI dispatcher what it is doing, or give it work"};
  std::string server = "localhost:8888", token_file, observer = "localhost:8887";
  double timeout_s = 10;
  bool json = false;
  CLI::App *notify, *retry, *status, *runners, *jobs, *dispatch, *cancel, *show, *log;
  CLI::App *repos, *repo, *repo_add;
  JobId job = 0;
  uint64_t limit = 50;
  std::string commit, branch, job_status, what, repo_name, repo_url;
  std::vector<std::string> required;
  bool wait = false, follow = false, newest_first = false;
  uint32_t attempt = 0;

  Cli() {
    app.name("cictl");
    app.footer(kExitCodes);
    app.add_option("--dispatcher-server", server, "dispatcher host:port")->capture_default_str();
    app.add_option("--token-file", token_file,
                   "file holding the shared token (default: $CI_TOKEN_FILE, if set)");
    app.add_option("--timeout", timeout_s, "seconds to wait for an answer")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 3600.0));
    app.add_flag("--json", json, "print one JSON object (errors too: {\"error\": ...})");
    app.require_subcommand(1);
    app.fallthrough();  // global options may also come after the subcommand
    notify = app.add_subcommand("notify", "make the observer fetch and look now");
    notify->add_option("--observer", observer, "the observer's --listen address")
        ->capture_default_str();
    retry = app.add_subcommand("retry", "run a finished job again");
    add_job(retry, job);
    cancel = app.add_subcommand("cancel", "cancel a queued or running job");
    add_job(cancel, job);
    status = app.add_subcommand("status", "the dispatcher's counters");
    runners = app.add_subcommand("runners", "the registered runners");
    jobs = app.add_subcommand("jobs", "the newest jobs");
    jobs->add_option("--limit", limit, "how many jobs (the dispatcher lists at most 10,000)")
        ->capture_default_str()
        ->check(CLI::Range(uint64_t{1}, uint64_t{1000000}));
    jobs->add_option("--branch", branch, "only the jobs of this branch");
    jobs->add_option("--repo", repo_name,
                     "only the jobs of this repository ('-': the default repository, the one "
                     "dispatched without a name)");
    jobs->add_option("--status", job_status,
                     "only jobs with this result (passed, failed, error, timeout, cancelled) "
                     "or in this state (queued, offered, running, finishing, finished)");
    dispatch = app.add_subcommand("dispatch", "queue a commit for testing");
    dispatch->add_option("commit", commit, "the commit id (40 or 64 hex digits)")->required();
    dispatch->add_option("--branch", branch, "the branch it is on (default: manual)");
    dispatch->add_option("--repo", repo_name,
                         "the repository it is in, announced before (cictl repo add); default: "
                         "the default repository");
    dispatch->add_option("--require", required, "a label the runner must have (repeat for more)")
        ->allow_extra_args(false);
    dispatch->add_flag("--wait", wait,
                       "wait for the job's result; the exit code says it (see below)");
    show = app.add_subcommand("show", "a job: its commit, tests, and what broke failing tests");
    show->add_option("job-or-commit", what,
                     "a job id, or a commit id (a unique prefix of 7 or more hex digits)")
        ->required();
    show->add_option("--repo", repo_name,
                     "the repository of the commit, when it has jobs in several ('-': the "
                     "default repository)");
    repos = app.add_subcommand("repos", "the named repositories and their jobs");
    repo = app.add_subcommand("repo", "manage the named repositories");
    repo->require_subcommand(1);
    repo_add = repo->add_subcommand(
        "add",
        "announce a repository (or change its URL or order): its jobs can then be "
        "dispatched with --repo NAME");
    repo_add->fallthrough();
    repo_add->add_option("name", repo_name, "the repository's name")->required();
    repo_add->add_option("url", repo_url, "where runners fetch it from")->required();
    repo_add->add_flag("--newest-first", newest_first,
                       "test a branch's newest queued commit before its backlog");
    log = app.add_subcommand("log", "the output of a job's test, raw");
    add_job(log, job);
    log->add_option("--attempt", attempt, "which attempt (default: the latest)")
        ->check(CLI::Range(uint32_t{1}, uint32_t{UINT32_MAX}));
    log->add_flag("--follow,-f", follow, "keep printing until the attempt has ended");
  }
};

// Bad arguments CLI11 does not check; "" when there are none.
std::string check_arguments(const Cli& c) {
  if (*c.dispatch) {
    if (std::string bad = check_commit_id(c.commit); !bad.empty())
      return "'" + c.commit + "': " + bad;
  }
  if ((*c.dispatch || *c.jobs) && !c.branch.empty()) {
    if (std::string bad = check_branch_name(c.branch); !bad.empty())
      return "--branch '" + c.branch + "': " + bad;
  }
  if ((*c.dispatch && !c.repo_name.empty()) || *c.repo_add) {
    if (std::string bad = check_repo_name(c.repo_name); !bad.empty())
      return (*c.repo_add ? "'" : "--repo '") + c.repo_name + "': " + bad;
  }
  if ((*c.jobs || *c.show) && !c.repo_name.empty() && c.repo_name != "-") {
    if (std::string bad = check_repo_name(c.repo_name); !bad.empty())
      return "--repo '" + c.repo_name + "': " + bad + " (or '-': the default repository)";
  }
  if (*c.repo_add) {
    if (std::string bad = check_repo_url(c.repo_url); !bad.empty())
      return "'" + c.repo_url + "': " + bad;
  }
  if (*c.dispatch && !c.required.empty()) {
    for (const std::string& label : c.required)
      if (std::string bad = check_label(label); !bad.empty())
        return "--require '" + label + "': " + bad;
    std::string why;
    if (!parse_label_list(join_labels(c.required), &why)) return "--require: " + why;
  }
  TestStatus ignored;
  if (*c.jobs && !c.job_status.empty() && !parse_test_status(c.job_status, &ignored) &&
      !is_job_state(c.job_status))
    return "--status '" + c.job_status +
           "': not a result (passed, failed, error, timeout, cancelled) nor a state (queued, "
           "offered, running, finishing, finished)";
  return {};
}

// The one request of a command that takes one.
Request request_of(const Cli& c) {
  if (*c.status) return StatusRequest{};
  if (*c.runners) return RunnersRequest{};
  if (*c.jobs) return JobsRequest{c.limit, c.branch, c.job_status, c.repo_name};
  if (*c.repos) return ReposRequest{};
  if (*c.repo_add) return RepoRequest{c.repo_name, c.repo_url, c.newest_first};
  if (*c.retry) return RetryRequest{c.job};
  if (*c.cancel) return CancelRequest{c.job, 0};
  if (*c.notify) return PollRequest{};
  DispatchRequest d{normalize_commit_id(c.commit), c.branch.empty() ? "manual" : c.branch};
  d.repo = c.repo_name;
  if (!c.required.empty()) d.required = *parse_label_list(join_labels(c.required));
  return d;
}

// Runs a command once its arguments are known to be good.
int run_command(const Cli& c, Session& s) {
  const Report& report = s.report;
  if (*c.show) {
    std::optional<std::string> repo;
    if (!c.repo_name.empty()) repo = c.repo_name;
    return run_show(s, c.what, repo);
  }
  if (*c.log) return run_log(s, c.job, c.attempt, c.follow);
  int code = 0;
  auto reply = s.ask(request_of(c), &code);
  if (!reply) return code;
  if (*c.status)
    return print_answer(report, s.peer, parse_status_reply(*reply), status_table, status_json);
  if (*c.runners)
    return print_answer(report, s.peer, parse_runners_reply(*reply), runners_table, runners_json);
  if (*c.jobs) return print_answer(report, s.peer, parse_jobs_reply(*reply), jobs_table, jobs_json);
  if (*c.repos)
    return print_answer(report, s.peer, parse_repos_reply(*reply), repos_table, repos_json);
  if (*c.repo_add) {
    if (report.json) {
      report.out << ok_json();
    } else {
      report.out << "repository " << c.repo_name << " at " << c.repo_url << ", "
                 << (c.newest_first ? "newest" : "oldest") << " commit first\n";
    }
    return 0;
  }
  if (*c.dispatch || *c.retry || *c.cancel) {
    auto job = reply->args.size() == 1 ? parse_u64(reply->args[0], INT64_MAX) : std::nullopt;
    if (!job || *job == 0) return report.fail(1, s.peer + " answered OK without a job id");
    if (*c.dispatch && c.wait) {
      if (!report.json) report.out << "job " << *job << std::endl;
      return wait_for_job(s, *job);
    }
    if (report.json) {
      report.out << job_json(*job);
    } else {
      report.out << "job " << *job << (*c.cancel ? " cancelled" : "") << "\n";
    }
    return 0;
  }
  // notify: quiet on success without --json, for it runs from git hooks.
  if (report.json) report.out << ok_json();
  return 0;
}

// A usage error, reported as JSON too with --json.
int usage_error(Cli& c, const CLI::ParseError& e, const std::vector<std::string>& args,
                const Report& report) {
  // CLI11 reports a missing subcommand before an unknown flag: name the flag first.
  for (const auto& arg : args) {
    if (arg.size() < 2 || arg[0] != '-' || arg == "--help" || arg == "-h") continue;
    std::string name = arg.substr(0, arg.find('='));
    bool known = c.app.get_option_no_throw(name) != nullptr;
    for (auto* sub : c.app.get_subcommands({})) {
      known = known || sub->get_option_no_throw(name) != nullptr;
      for (auto* nested : sub->get_subcommands({}))
        known = known || nested->get_option_no_throw(name) != nullptr;
    }
    if (!known)
      return report.fail(2, "unknown option '" + name + "'",
                         "Run with --help for more information.\n");
  }
  std::ostringstream o, e2;
  int code = c.app.exit(e, o, e2);
  report.out << o.str();
  if (code == 0) return 0;
  report.err << e2.str();
  if (report.json) report.out << error_json(e.what());
  return 2;
}

}  // namespace

int run_ctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Cli c;
  // Known before parsing: a usage error is reported as JSON too.
  Report report{out, err, std::find(args.begin(), args.end(), "--json") != args.end()};
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    c.app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return usage_error(c, e, args, report);
  }
  report.json = c.json;

  std::string why;
  const std::string& target = *c.notify ? c.observer : c.server;
  auto hp = parse_host_port(target, &why);
  if (!hp)
    return report.fail(2, std::string(*c.notify ? "--observer" : "--dispatcher-server") + " '" +
                              target + "': " + why);
  if (std::string bad = check_arguments(c); !bad.empty()) return report.fail(2, bad);

  auto token = load_token(c.token_file);
  if (!token) return report.fail(2, "--token-file: " + token.error());
  ClientOptions co;
  co.token = *token;
  co.service = *c.notify ? kObserverService : kDispatcherService;
  co.io_timeout = std::chrono::milliseconds(static_cast<int64_t>(c.timeout_s * 1000));
  co.connect_timeout = std::min(co.io_timeout, std::chrono::milliseconds(5000));
  LineClient client(hp->host, hp->port, co);
  Session session{client, report, *c.notify ? "the observer" : "the dispatcher", co.io_timeout};
  return run_command(c, session);
}

}  // namespace ci
