// ci-runner: runs the dispatcher's test jobs in its own clone of the master repository.
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "ci/auth.h"
#include "ci/log.h"
#include "ci/signals.h"
#include "ci/validate.h"
#include "runner/runner.h"

namespace {

constexpr size_t kMaxOutputLimit = (16u << 20) - (4u << 10);  // under the dispatcher's body cap

CLI::Validator host_validator() {
  return CLI::Validator([](std::string& value) { return ci::check_host(value); }, "HOST", "");
}

CLI::Validator host_port_validator() {
  return CLI::Validator(
      [](std::string& value) {
        std::string why;
        if (ci::parse_host_port(value, &why)) return std::string();
        return why.empty() ? "expected host:port" : why;
      },
      "HOST:PORT", "");
}

// A SIGINT or SIGTERM arriving within `timeout` (they are blocked, see main), or 0.
int wait_for_stop_signal_for(std::chrono::milliseconds timeout) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
  timespec wait{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  int sig = ::sigtimedwait(&set, nullptr, &wait);
  return sig > 0 ? sig : 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread starts, so that every thread inherits the mask.
  ci::block_stop_signals();
  // Blocks of 128 KiB and more (a test's output, its results message) come straight
  // from the system and go straight back when freed. By default glibc raises that
  // threshold, and the one for giving back the top of a thread's heap, to the largest
  // block freed so far: after a test printing megabytes, as many stayed resident in
  // the worker's and the liaison's heaps, where malloc_trim does not reach.
  ::mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  CLI::App app{
      "ci-runner: runs test jobs for the CI dispatcher in its own clone of the repository"};
  std::string host = "127.0.0.1";
  int port = -1;
  std::string dispatcher = "localhost:8888";
  std::string test_command;
  int64_t timeout_s = 1800;
  size_t max_output = 4u << 20;
  int64_t dispatcher_timeout_s = 10;
  std::string log_level = "info";
  std::string spool_dir;
  bool drain = false;
  std::string token_file;
  bool insecure = false;
  std::string repo;
  app.add_option("--host", host, "Address to bind and to advertise to the dispatcher")
      ->capture_default_str()
      ->check(host_validator());
  app.add_option("--port", port, "Port to listen on (default: first free in 8900-9000; 0: any)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--dispatcher-server", dispatcher, "The dispatcher's host:port")
      ->capture_default_str()
      ->check(host_port_validator());
  app.add_option("--test-command", test_command,
                 "Shell command to run the tests (default: .ci/run, else Python unittest)");
  std::vector<std::string> pass_env;
  app.add_option("--pass-env", pass_env,
                 "A variable of the runner's environment the test also gets (repeatable); "
                 "it gets PATH, HOME, USER, LOGNAME, LANG, LC_ALL, TZ, TMPDIR and the CI_ "
                 "variables anyway")
      ->allow_extra_args(false)
      ->check(CLI::Validator(
          [](std::string& name) -> std::string {
            if (name.empty() ||
                name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmno"
                                       "pqrstuvwxyz0123456789_") != std::string::npos ||
                (name[0] >= '0' && name[0] <= '9'))
              return "not a variable name: '" + name + "'";
            if (name == "CI" || name.rfind("CI_", 0) == 0)
              return "the CI_ variables are set by the runner";
            return {};
          },
          "NAME", ""));
  ci::runner::CgroupLimits limits;
  app.add_option("--memory-max", limits.memory_max,
                 "Memory a test may use, all its processes together (e.g. 2G; needs cgroup v2)")
      ->transform(CLI::AsSizeValue(false));
  app.add_option("--cpus", limits.cpus, "CPUs' worth of time a test may use (needs cgroup v2)")
      ->check(CLI::Range(0.01, 4096.0));
  app.add_option("--pids-max", limits.pids_max,
                 "Processes and threads a test may have at once (needs cgroup v2)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{4194304}));
  std::string job_cgroup = "auto";
  app.add_option("--job-cgroup", job_cgroup,
                 "A cgroup (v2) per job: only with a limit (auto), or always (on: ends every "
                 "process a test left running, about 10 ms a job)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "on"}));
  app.add_option("--timeout", timeout_s, "Seconds a test run may take")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{7 * 24 * 3600}));
  app.add_option("--max-output", max_output, "Bytes of test output kept")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, kMaxOutputLimit));
  app.add_option("--dispatcher-timeout", dispatcher_timeout_s,
                 "Seconds without a message from the dispatcher before registering again")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{24 * 3600}));
  std::string state_dir;
  app.add_option("--state-dir", state_dir,
                 "The runner's own folder: spool, jobs' checkouts, records (default: "
                 "REPO.ci-runner, beside the clone; without REPO, WORKDIR/state)");
  app.add_option("--spool-dir", spool_dir,
                 "Where results wait until the dispatcher has them (default: STATE-DIR/spool)");
  std::string sandbox = "on";
  app.add_option("--sandbox", sandbox,
                 "Run each test in a bubblewrap sandbox (on), or unconfined with the runner's "
                 "rights (off)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  std::string test_network = "host";
  app.add_option("--test-network", test_network,
                 "The network a sandboxed test gets: the machine's (host) or none (a loopback of "
                 "its own)")
      ->capture_default_str()
      ->check(CLI::IsMember({"host", "none"}));
  std::string test_user = "nobody";
  app.add_option("--test-user", test_user,
                 "When the runner runs as root, the user tests run as (never root)")
      ->capture_default_str();
  std::vector<std::string> hide;
  app.add_option("--sandbox-hide", hide,
                 "A folder or file a sandboxed test must not see, besides the runner's own "
                 "(repeatable)")
      ->allow_extra_args(false);
  std::vector<std::string> share;
  app.add_option("--sandbox-share", share,
                 "A folder every sandboxed test may read and write (a cache shared by all "
                 "jobs; repeatable)")
      ->allow_extra_args(false)
      ->check(CLI::ExistingDirectory);
  app.add_flag("--drain", drain,
               "On SIGTERM/SIGINT, finish the running test and deliver its results before "
               "exiting (a second signal stops at once); by default the test is killed and its "
               "job given back to the dispatcher");
  app.add_option("--token-file", token_file,
                 "File holding the shared token every peer must prove (default: "
                 "$CI_TOKEN_FILE, if set)");
  app.add_flag("--insecure", insecure, "Allow a non-loopback --host without a token");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  std::string workdir;
  app.add_option("--workdir", workdir,
                 "A folder where the runner clones the named repositories its jobs come from "
                 "(one object store each, fetched when a commit is missing); with or instead of "
                 "REPO");
  uint32_t slots = 1;
  app.add_option("--slots", slots, "Jobs run at once, each in a checkout of its own")
      ->capture_default_str()
      ->check(CLI::Range(uint32_t{1}, ci::kMaxSlots));
  std::vector<std::string> labels;
  app.add_option("--label", labels,
                 "A label the runner has (repeatable): jobs requiring labels go only to runners "
                 "with all of them")
      ->allow_extra_args(false)
      ->check(CLI::Validator(
          [](std::string& label) {
            std::string why = ci::check_label(label);
            return why.empty() ? why : "'" + label + "': " + why;
          },
          "LABEL", ""));
  app.add_option("REPO", repo,
                 "The runner's own clone of the master repository, for the default repository's "
                 "jobs (optional with --workdir)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (repo.empty() && workdir.empty()) {
    std::cerr << "ci-runner: give the runner's clone of the repository (REPO), or --workdir DIR "
                 "for named repositories, or both\n"
              << "Run with --help for more information.\n";
    return 2;
  }
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  if (labels.size() > ci::kMaxLabels) {
    std::cerr << "ci-runner: --label: at most " << ci::kMaxLabels << " labels\n";
    return 2;
  }

  if (auto logging = ci::setup_logging("ci-runner", log_level); !logging) {
    std::cerr << "ci-runner: --log-level: " << logging.error() << "\n";
    return 2;
  }

  auto token = ci::load_token(token_file);
  if (!token) {
    spdlog::error("--token-file: {}", token.error());
    return 2;
  }
  if (auto allowed = ci::check_bind_policy(host, !token->empty(), insecure,
                                           "make it run tests and cancel them");
      !allowed) {
    spdlog::error("--host {}: {}", host, allowed.error());
    return 2;
  }

  ci::runner::RunnerOptions options;
  options.token = *token;
  options.host = host;
  if (port >= 0) options.port = static_cast<uint16_t>(port);
  options.dispatcher = *ci::parse_host_port(dispatcher);
  options.job.repo = repo;
  options.workdir = workdir;
  options.slots = slots;
  options.labels = labels;
  options.job.test_command = test_command;
  options.job.pass_env = pass_env;
  options.job.timeout = std::chrono::seconds(timeout_s);
  options.job.max_output = max_output;
  options.dispatcher_timeout = std::chrono::seconds(dispatcher_timeout_s);
  options.spool_dir = spool_dir;
  options.state_dir = state_dir;
  options.test_user = test_user;
  options.token_file = token_file.empty() && std::getenv("CI_TOKEN_FILE")
                           ? std::getenv("CI_TOKEN_FILE")
                           : token_file;
  options.job.sandbox.enabled = sandbox == "on";
  options.job.sandbox.network = test_network == "host";
  options.job.sandbox.hidden = hide;
  options.job.sandbox.shared = share;
  options.cgroup_limits = limits;
  options.job_cgroup = job_cgroup == "on";

  ci::runner::Runner runner(options);
  if (auto started = runner.start(); !started) {
    spdlog::error("{}", started.error());
    return 1;
  }
  int sig = ci::wait_for_stop_signal();
  if (drain) {
    spdlog::info("received {}: draining (send it again to stop at once)", ci::signal_name(sig));
    runner.drain();
    while (!runner.wait_drained(std::chrono::milliseconds(0))) {
      if (int again = wait_for_stop_signal_for(std::chrono::milliseconds(100)); again != 0) {
        spdlog::info("received {} again: stopping at once", ci::signal_name(again));
        break;
      }
    }
  } else {
    spdlog::info("received {}, stopping", ci::signal_name(sig));
  }
  runner.stop();
  spdlog::info("stopped");
  return 0;
}
