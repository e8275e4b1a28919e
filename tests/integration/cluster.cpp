#include "cluster.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "ci/validate.h"

namespace ci::test {

Cluster::Cluster() {
  master_ = dir_ / "master";
  // Run as root, the runners run their tests as an unprivileged user, who must be able
  // to reach the folders a test shares with it (see shared_dir()).
  ::chmod(dir_.path().c_str(), 0755);
}

std::string Cluster::shared_dir(const std::string& name) {
  std::string dir = dir_ / name;
  std::filesystem::create_directories(dir);
  ::chmod(dir.c_str(), 0777);
  return dir;
}

Daemon& Cluster::start_dispatcher(std::vector<std::string> extra) {
  std::vector<std::string> args{"--port",        port_ ? std::to_string(port_) : "0",
                                "--results-dir", results_dir(),
                                "--state-dir",   dir_ / "state"};
  if (std::find(extra.begin(), extra.end(), "--heartbeat-interval") == extra.end())
    extra.insert(extra.end(), {"--heartbeat-interval", "0.2"});
  args.insert(args.end(), extra.begin(), extra.end());
  // A log file per start, so that a restart is not taken for the previous start.
  std::string log = dir_ / ("dispatcher-" + std::to_string(++dispatcher_starts_) + ".log");
  dispatcher_ = std::make_unique<Daemon>("ci-dispatcher", args, log);
  port_ = dispatcher_->wait_listening();
  return *dispatcher_;
}

Daemon& Cluster::start_runner(std::vector<std::string> extra) {
  std::string name = "runner" + std::to_string(runners_.size() + 1);
  std::string clone = clone_repo(master_, dir_ / name);
  std::vector<std::string> args{
      "--port", "0", "--dispatcher-server", server(), "--dispatcher-timeout", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(clone);
  runners_.push_back(std::make_unique<Daemon>("ci-runner", args, dir_ / (name + ".log")));
  runner_workdirs_.emplace_back();
  runners_.back()->wait_listening();
  return *runners_.back();
}

Daemon& Cluster::start_workdir_runner(std::vector<std::string> extra) {
  std::string name = "runner" + std::to_string(runners_.size() + 1);
  std::vector<std::string> args{"--port", "0", "--dispatcher-server", server()};
  if (std::find(extra.begin(), extra.end(), "--dispatcher-timeout") == extra.end())
    args.insert(args.end(), {"--dispatcher-timeout", "2"});
  auto given = std::find(extra.begin(), extra.end(), "--workdir");
  std::string workdir = dir_ / (name + ".work");
  if (given == extra.end() || given + 1 == extra.end())
    args.insert(args.end(), {"--workdir", workdir});
  else
    workdir = *(given + 1);
  args.insert(args.end(), extra.begin(), extra.end());
  runners_.push_back(std::make_unique<Daemon>("ci-runner", args, dir_ / (name + ".log")));
  runner_workdirs_.push_back(workdir);
  runners_.back()->wait_listening();
  return *runners_.back();
}

Daemon& Cluster::start_observer_of(const std::string& master, std::vector<std::string> extra) {
  std::string n = std::to_string(observers_of_.size() + 1);
  std::string clone = dir_ / ("observer-of-" + n);
  clone_repo(master, clone);
  std::vector<std::string> args{"--dispatcher-server", server()};
  if (std::find(extra.begin(), extra.end(), "--interval") == extra.end())
    extra.insert(extra.end(), {"--interval", "0.1"});
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(clone);
  observers_of_.push_back(
      std::make_unique<Daemon>("ci-observer", args, dir_ / ("observer-of-" + n + ".log")));
  Daemon& observer = *observers_of_.back();
  bool ready = wait_until([&] {
    return observer.log_contains("first look") || observer.log_contains("remembered") ||
           !observer.running();
  });
  EXPECT_TRUE(ready && observer.running()) << observer.log();
  return observer;
}

Daemon& Cluster::start_observer(std::vector<std::string> extra) {
  std::string clone = dir_ / "observer";
  if (!file_exists(clone)) clone_repo(master_, clone);
  std::vector<std::string> args{"--dispatcher-server", server()};
  if (std::find(extra.begin(), extra.end(), "--interval") == extra.end())
    extra.insert(extra.end(), {"--interval", "0.1"});
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(clone);
  std::string log = dir_ / ("observer-" + std::to_string(++observer_starts_) + ".log");
  observer_ = std::make_unique<Daemon>("ci-observer", args, log);
  // Commits made before its first look count as already seen: wait for it.
  bool ready = wait_until([&] {
    return observer_->log_contains("first look") || observer_->log_contains("remembered") ||
           !observer_->running();
  });
  EXPECT_TRUE(ready && observer_->running()) << observer_->log();
  return *observer_;
}

Daemon& Cluster::start_reporter(std::vector<std::string> extra) {
  std::vector<std::string> args{"--dispatcher-server", server(), "--http",
                                "127.0.0.1:" + std::to_string(http_port_)};
  if (std::find(extra.begin(), extra.end(), "--db") == extra.end())
    extra.insert(extra.end(), {"--db", dir_ / "reporter.db"});
  args.insert(args.end(), extra.begin(), extra.end());
  std::string log = dir_ / ("reporter-" + std::to_string(++reporter_starts_) + ".log");
  reporter_ = std::make_unique<Daemon>("ci-reporter", args, log);
  http_port_ = reporter_->wait_listening();
  return *reporter_;
}

CommandResult Cluster::cictl(std::vector<std::string> args) {
  args.insert(args.begin(), {bin("cictl"), "--dispatcher-server", server()});
  CommandSpec spec;
  spec.argv = args;
  spec.env = current_environment();
  spec.timeout = 60000ms;
  auto result = run_command(spec);
  EXPECT_TRUE(result.ok()) << result.error();
  return result.ok() ? *result : CommandResult{};
}

Result<Reply> Cluster::ask(const Request& request) {
  LineClient client("127.0.0.1", port_);
  return client.call(request);
}

Result<StatusReply> Cluster::status() {
  auto reply = ask(StatusRequest{});
  if (!reply) return Error{reply.error()};
  return parse_status_reply(*reply);
}

int64_t Cluster::status_value(const std::string& key) {
  auto s = status();
  if (!s) return -1;
  const std::pair<const char*, uint64_t> values[] = {
      {"runners", s->runners},
      {"runners-idle", s->runners_idle},
      {"runners-busy", s->runners_busy},
      {"runners-unreachable", s->runners_unreachable},
      {"jobs-queued", s->jobs_queued},
      {"jobs-running", s->jobs_running},
      {"jobs-finished", s->jobs_finished},
      {"jobs-passed", s->jobs_passed},
      {"jobs-failed", s->jobs_failed},
      {"jobs-error", s->jobs_error},
      {"jobs-timeout", s->jobs_timeout},
      {"jobs-cancelled", s->jobs_cancelled},
      {"jobs-waiting", s->jobs_waiting},
      {"repos", s->repos},
  };
  for (const auto& [name, value] : values)
    if (key == name) return static_cast<int64_t>(value);
  ADD_FAILURE() << "no status value '" << key << "'";
  return -1;
}

bool Cluster::wait_runners(int64_t n, std::chrono::milliseconds timeout) {
  return wait_until([&] { return status_value("runners") == n; }, timeout);
}

bool Cluster::wait_result(const std::string& commit, std::chrono::milliseconds timeout) {
  return wait_until([&] { return file_exists(result_path(commit)); }, timeout);
}

std::vector<std::string> Cluster::result_files() {
  std::vector<std::string> out;
  for (auto& name : list_dir(results_dir()))
    if (check_commit_id(name).empty()) out.push_back(name);
  return out;
}

bool Cluster::wait_result(const std::string& repo, const std::string& commit,
                          std::chrono::milliseconds timeout) {
  return wait_until([&] { return file_exists(result_path(repo, commit)); }, timeout);
}

std::vector<std::string> Cluster::result_files(const std::string& repo) {
  std::vector<std::string> out;
  for (auto& name : list_dir(results_dir() + "/" + repo))
    if (check_commit_id(name).empty()) out.push_back(name);
  return out;
}

std::string header_field(const std::string& result, const std::string& key) {
  std::string needle = key + ": ";
  size_t end_of_header = result.find("\n\n");
  size_t pos = result.rfind("\n" + needle, end_of_header);
  if (result.compare(0, needle.size(), needle) == 0) {
    pos = 0;
  } else if (pos == std::string::npos) {
    return {};
  } else {
    pos += 1;
  }
  size_t start = pos + needle.size();
  return result.substr(start, result.find('\n', start) - start);
}

}  // namespace ci::test

namespace ci::test {

void Cluster::kill_hard(Daemon& daemon) {
  daemon.kill(SIGKILL);
  daemon.stop();
}

std::vector<JobRow> jobs_of(Cluster& cluster) {
  auto reply = cluster.ask(JobsRequest{1000000});
  if (!reply) return {};
  auto jobs = parse_jobs_reply(*reply);
  // A dispatcher that answers, but badly, is a failure of the test, not an empty list.
  EXPECT_TRUE(jobs.ok() || reply->kind != Reply::Kind::Ok) << jobs.error();
  return jobs.ok() ? std::move(jobs->jobs) : std::vector<JobRow>{};
}

std::vector<JobRow> jobs_of(Cluster& cluster, const std::string& repo) {
  std::vector<JobRow> out;
  for (auto& row : jobs_of(cluster))
    if (row.repo == (repo == "-" ? "" : repo)) out.push_back(std::move(row));
  return out;
}

}  // namespace ci::test
