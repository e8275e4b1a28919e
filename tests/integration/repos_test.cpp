// Many repositories with real daemons: named repositories announced by their observers
// or by hand, runners that provision themselves under --workdir, runners of several
// slots, labels a job requires, the fair queue across repositories, and what happens
// when provisioning goes wrong.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "ci/events.h"
#include "cluster.h"

namespace ci::test {
namespace {

namespace fs = std::filesystem;

// A fast test: says which commit it tested.
constexpr char kEcho[] = "echo tested $CI_COMMIT";

void announce(Cluster& c, const std::string& name, const std::string& url) {
  auto reply = c.ask(RepoRequest{name, url});
  ASSERT_TRUE(reply && reply->kind == Reply::Kind::Ok) << (reply ? reply->reason() : reply.error());
}

// Dispatches a commit of a named repository; the job's id (0 on failure, with a test
// failure).
JobId dispatch(Cluster& c, const std::string& repo, const std::string& commit,
               std::vector<std::string> required = {}) {
  DispatchRequest request{commit, "master"};
  request.repo = repo;
  request.required = std::move(required);
  auto reply = c.ask(request);
  EXPECT_TRUE(reply && reply->kind == Reply::Kind::Ok && !reply->args.empty())
      << (reply ? reply->reason() : reply.error());
  if (!reply || reply->kind != Reply::Kind::Ok || reply->args.empty()) return 0;
  return std::stoull(reply->args[0]);
}

std::vector<RunnerRow> runners_of(Cluster& c) {
  auto reply = c.ask(RunnersRequest{});
  if (!reply) return {};
  auto runners = parse_runners_reply(*reply);
  EXPECT_TRUE(runners.ok()) << runners.error();
  return runners.ok() ? runners->runners : std::vector<RunnerRow>{};
}

// The dispatcher's feed from its start, in order.
std::vector<FeedEvent> feed_of(Cluster& c) {
  auto reply = c.ask(EventsRequest{0, kMaxEventsPerRead, 0});
  EXPECT_TRUE(reply && reply->kind == Reply::Kind::Ok) << (reply ? reply->reason() : reply.error());
  if (!reply || reply->kind != Reply::Kind::Ok) return {};
  auto events = parse_events(reply->body);
  EXPECT_TRUE(events.ok()) << events.error();
  return events.ok() ? *events : std::vector<FeedEvent>{};
}

// How many job.finished events each job has in the feed.
std::map<JobId, int> finishes(Cluster& c) {
  std::map<JobId, int> out;
  for (const auto& e : feed_of(c))
    if (e.kind == EventKind::JobFinished) ++out[e.job.id];
  return out;
}

// The word after "<key> " on a line of a result's output ("" if none).
std::string output_value(const std::string& result, const std::string& key) {
  std::istringstream in(result);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + " ", 0) == 0) return line.substr(key.size() + 1);
  return {};
}

std::optional<JobRow> row_of(Cluster& c, const std::string& repo, const std::string& commit) {
  for (auto& row : jobs_of(c, repo))
    if (row.commit == commit) return row;
  return std::nullopt;
}

std::string logs(Cluster& c, size_t runners) {
  std::string out = "dispatcher:\n" + c.dispatcher().log();
  for (size_t i = 0; i < runners; ++i)
    out += "runner " + std::to_string(i) + ":\n" + c.runner(i).log();
  return out;
}

TEST(Repos, TwoRepositoriesOnTwoWorkdirRunnersEveryCommitOnceAndAForkHasItsOwnResults) {
  Cluster c;
  std::string a = c.path("a"), b = c.path("b"), fork = c.path("fork");
  make_master_repo(a);
  make_master_repo(b);
  clone_repo(a, fork);
  c.start_dispatcher();
  c.start_workdir_runner({"--test-command", kEcho});
  c.start_workdir_runner({"--test-command", kEcho});
  ASSERT_TRUE(c.wait_runners(2));
  c.start_observer_of(a, {"--name", "a", "--url", a});
  c.start_observer_of(b, {"--name", "b", "--url", b});
  c.start_observer_of(fork, {"--name", "c", "--url", fork});

  std::vector<std::string> in_a, in_b, in_c;
  for (int i = 0; i < 4; ++i) {
    in_a.push_back(commit_file(a, "a" + std::to_string(i), "a", "a " + std::to_string(i)));
    in_b.push_back(commit_file(b, "b" + std::to_string(i), "b", "b " + std::to_string(i)));
  }
  // The fork takes a's commits and adds its own: the shared ones are tested again, as c's.
  git(fork, {"fetch", "-q", "origin"});
  git(fork, {"merge", "-q", "--ff-only", "origin/master"});
  in_c = in_a;
  for (int i = 0; i < 2; ++i)
    in_c.push_back(commit_file(fork, "c" + std::to_string(i), "c", "c " + std::to_string(i)));

  const std::vector<std::pair<std::string, std::vector<std::string>>> all{
      {"a", in_a}, {"b", in_b}, {"c", in_c}};
  for (const auto& [repo, commits] : all)
    for (const auto& commit : commits)
      ASSERT_TRUE(c.wait_result(repo, commit)) << repo << " " << commit << logs(c, 2);
  ASSERT_TRUE(wait_until([&] { return c.status_value("jobs-finished") == 14; }))
      << c.status_value("jobs-finished");

  std::set<std::string> runners;
  for (const auto& [repo, commits] : all) {
    auto sorted = commits;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(c.result_files(repo), sorted) << repo;
    EXPECT_EQ(jobs_of(c, repo).size(), commits.size()) << repo;
    for (const auto& commit : commits) {
      std::string result = c.result(repo, commit);
      EXPECT_EQ(header_field(result, "status"), "passed") << result;
      EXPECT_EQ(header_field(result, "attempt"), "1") << result;
      EXPECT_NE(result.find("tested " + commit), std::string::npos) << result;
      runners.insert(header_field(result, "runner"));
    }
  }
  // Nothing of a named repository lands where the default repository's results go.
  EXPECT_TRUE(c.result_files().empty());
  // Each shared commit is two jobs: a's and c's.
  for (const auto& commit : in_a)
    EXPECT_NE(header_field(c.result("a", commit), "job"),
              header_field(c.result("c", commit), "job"));
  // Both runners provisioned repositories for themselves and took part.
  EXPECT_EQ(runners.size(), 2u);
  for (const auto& [job, n] : finishes(c)) EXPECT_EQ(n, 1) << "job " << job;

  // cictl shows the repositories and filters jobs by repository.
  auto repos = c.cictl({"repos"});
  EXPECT_EQ(repos.exit_code, 0) << repos.output;
  for (const auto& name : {a, b, fork})
    EXPECT_NE(repos.output.find(name), std::string::npos) << repos.output;
  auto jobs = c.cictl({"jobs", "--repo", "b"});
  EXPECT_EQ(jobs.exit_code, 0) << jobs.output;
  for (const auto& commit : in_b)
    EXPECT_NE(jobs.output.find(commit.substr(0, 8)), std::string::npos) << jobs.output;
  for (const auto& commit : in_c)
    EXPECT_EQ(jobs.output.find(commit.substr(0, 8)), std::string::npos) << jobs.output;
}

TEST(Repos, FourSlotsRunFourSlowJobsAtOnceEachInItsOwnCheckout) {
  Cluster c;
  std::string a = c.path("a");
  make_master_repo(a);
  std::vector<std::string> commits;
  for (int i = 0; i < 8; ++i) commits.push_back(commit_file(a, "f" + std::to_string(i), "x"));
  c.start_dispatcher();
  announce(c, "a", a);
  // Each job says it started and then runs until the test lets it end: a job that
  // merely slept could end before the fourth has started when starting takes long on a
  // busy machine.
  std::string gate = c.shared_dir("gate");
  c.start_workdir_runner({"--slots", "4", "--sandbox-share", gate, "--test-command",
                          "echo start $(date +%s%N); echo cwd $(pwd); touch " + gate +
                              "/started.$CI_JOB_ID; while [ ! -e " + gate +
                              "/release ]; do sleep 0.02; done; echo end $(date +%s%N)"});
  ASSERT_TRUE(c.wait_runners(1));
  for (const auto& commit : commits) ASSERT_NE(dispatch(c, "a", commit), 0u);
  // Four at once, and no more: released once four have started.
  ASSERT_TRUE(wait_until([&] { return list_dir(gate).size() == 4; })) << logs(c, 1);
  std::ofstream(gate + "/release").flush();
  for (const auto& commit : commits) ASSERT_TRUE(c.wait_result("a", commit)) << logs(c, 1);

  struct Run {
    long long start = 0, end = 0;
    std::string cwd;
  };
  std::vector<Run> runs;
  for (const auto& commit : commits) {
    std::string result = c.result("a", commit);
    EXPECT_EQ(header_field(result, "status"), "passed") << result;
    Run run{std::atoll(output_value(result, "start").c_str()),
            std::atoll(output_value(result, "end").c_str()), output_value(result, "cwd")};
    ASSERT_GT(run.start, 0) << result;
    ASSERT_GT(run.end, run.start) << result;
    ASSERT_FALSE(run.cwd.empty()) << result;
    runs.push_back(run);
  }
  // How many ran at the moment each one started: never more than the 4 slots, and 4 at
  // some moment (the first four held until all four had started).
  size_t most = 0;
  for (const auto& r : runs) {
    size_t at_once = std::count_if(runs.begin(), runs.end(), [&](const Run& o) {
      return o.start <= r.start && r.start < o.end;
    });
    most = std::max(most, at_once);
  }
  EXPECT_EQ(most, 4u);
  // Two jobs running at the same time never share a checkout.
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = i + 1; j < runs.size(); ++j) {
      bool overlap = runs[i].start < runs[j].end && runs[j].start < runs[i].end;
      if (overlap) {
        EXPECT_NE(runs[i].cwd, runs[j].cwd) << i << " and " << j;
      }
    }
}

// Waits until one runner holds `n` jobs in its slots; its address ("" if it never does).
std::string wait_busy_runner(Cluster& c, uint32_t n) {
  std::string address;
  wait_until([&] {
    for (const auto& row : runners_of(c))
      if (row.busy == n) address = row.address;
    return !address.empty();
  });
  return address;
}

TEST(Repos, AKilledFourSlotRunnersJobsAreFinishedElsewhereOnceEach) {
  Cluster c;
  std::string a = c.path("a");
  make_master_repo(a);
  std::vector<std::string> commits;
  for (int i = 0; i < 4; ++i) commits.push_back(commit_file(a, "f" + std::to_string(i), "x"));
  c.start_dispatcher();
  announce(c, "a", a);
  c.start_workdir_runner({"--slots", "4", "--test-command", "sleep 300"});
  ASSERT_TRUE(c.wait_runners(1));
  for (const auto& commit : commits) ASSERT_NE(dispatch(c, "a", commit), 0u);
  std::string first = wait_busy_runner(c, 4);
  ASSERT_FALSE(first.empty()) << logs(c, 1);
  ASSERT_TRUE(wait_until([&] {
    auto rows = jobs_of(c, "a");
    return std::count_if(rows.begin(), rows.end(),
                         [](const JobRow& r) { return r.state == "running"; }) == 4;
  }));

  Cluster::kill_hard(c.runner(0));
  c.start_workdir_runner({"--slots", "4", "--test-command", kEcho});
  for (const auto& commit : commits) ASSERT_TRUE(c.wait_result("a", commit)) << logs(c, 2);
  for (const auto& commit : commits) {
    std::string result = c.result("a", commit);
    EXPECT_EQ(header_field(result, "status"), "passed") << result;
    EXPECT_NE(header_field(result, "runner"), first) << result;
    EXPECT_NE(result.find("tested " + commit), std::string::npos) << result;
  }
  ASSERT_TRUE(wait_until([&] { return c.status_value("jobs-finished") == 4; }));
  // The dispatcher writes the feed with its next group commit, a moment after the status
  // has the change: the four job.finished events are waited for.
  std::map<JobId, int> done;
  EXPECT_TRUE(wait_until([&] {
    done = finishes(c);
    return done.size() == 4;
  })) << done.size();
  for (const auto& [job, n] : done) EXPECT_EQ(n, 1) << "job " << job;
}

TEST(Repos, ATerminatedFourSlotRunnerGivesItsJobsBackAtOnce) {
  Cluster c;
  std::string a = c.path("a");
  make_master_repo(a);
  std::vector<std::string> commits;
  for (int i = 0; i < 4; ++i) commits.push_back(commit_file(a, "f" + std::to_string(i), "x"));
  // A runner is declared dead only after 5 missed pings 4 s apart: 20 s. A runner that
  // stops gives its jobs back itself, long before that.
  c.start_dispatcher({"--heartbeat-interval", "4", "--heartbeat-misses", "5"});
  announce(c, "a", a);
  c.start_workdir_runner(
      {"--slots", "4", "--dispatcher-timeout", "60", "--test-command", "sleep 300"});
  ASSERT_TRUE(c.wait_runners(1));
  for (const auto& commit : commits) ASSERT_NE(dispatch(c, "a", commit), 0u);
  std::string first = wait_busy_runner(c, 4);
  ASSERT_FALSE(first.empty()) << logs(c, 1);
  c.start_workdir_runner({"--slots", "4", "--dispatcher-timeout", "60", "--test-command", kEcho});
  ASSERT_TRUE(c.wait_runners(2));

  auto stopped = std::chrono::steady_clock::now();
  c.runner(0).kill(SIGTERM);
  for (const auto& commit : commits) ASSERT_TRUE(c.wait_result("a", commit, 30000ms)) << logs(c, 2);
  auto took = std::chrono::steady_clock::now() - stopped;
  // Generous for a loaded machine, and still well under the 20 s the heartbeat needs.
  EXPECT_LT(took, 10s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                       << " ms";
  for (const auto& commit : commits) {
    std::string result = c.result("a", commit);
    EXPECT_EQ(header_field(result, "status"), "passed") << result;
    EXPECT_NE(header_field(result, "runner"), first) << result;
  }
  EXPECT_TRUE(wait_until([&] { return !c.runner(0).running(); }, 10000ms));
}

TEST(Repos, AJobNeedingALabelWaitsWithItsReasonUntilARunnerWithItJoins) {
  Cluster c;
  std::string a = c.path("a");
  make_master_repo(a);
  std::string needs_gpu = commit_file(a, "gpu", "gpu");
  std::string plain = commit_file(a, "plain", "plain");
  c.start_dispatcher();
  announce(c, "a", a);
  c.start_workdir_runner({"--label", "linux", "--test-command", kEcho});
  ASSERT_TRUE(c.wait_runners(1));

  auto dispatched = c.cictl({"dispatch", needs_gpu, "--repo", "a", "--require", "gpu"});
  ASSERT_EQ(dispatched.exit_code, 0) << dispatched.output;
  // A job the runner can take runs meanwhile.
  ASSERT_NE(dispatch(c, "a", plain), 0u);
  ASSERT_TRUE(c.wait_result("a", plain)) << logs(c, 1);

  ASSERT_TRUE(wait_until([&] {
    return c.cictl({"jobs"}).output.find("waiting for a runner with gpu") != std::string::npos;
  })) << c.cictl({"jobs"}).output;
  auto row = row_of(c, "a", needs_gpu);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->state, "queued");
  EXPECT_EQ(row->waiting, "waiting for a runner with gpu");
  EXPECT_EQ(c.status_value("jobs-waiting"), 1);
  EXPECT_FALSE(file_exists(c.result_path("a", needs_gpu)));

  c.start_workdir_runner({"--label", "gpu", "--test-command", kEcho});
  ASSERT_TRUE(c.wait_result("a", needs_gpu)) << logs(c, 2);
  std::string gpu_runner;
  for (const auto& r : runners_of(c))
    if (std::find(r.labels.begin(), r.labels.end(), "gpu") != r.labels.end())
      gpu_runner = r.address;
  EXPECT_FALSE(gpu_runner.empty());
  EXPECT_EQ(header_field(c.result("a", needs_gpu), "runner"), gpu_runner);
  EXPECT_EQ(header_field(c.result("a", needs_gpu), "status"), "passed");
  EXPECT_EQ(c.status_value("jobs-waiting"), 0);
}

TEST(Repos, TheLabelsFileOfEachCommitAndTheObserversRequireAreHonoured) {
  Cluster c;
  std::string a = c.path("a"), b = c.path("b");
  make_master_repo(a);
  make_master_repo(b);
  c.start_dispatcher();
  c.start_workdir_runner({"--test-command", kEcho});
  ASSERT_TRUE(c.wait_runners(1));
  c.start_observer_of(a, {"--name", "a", "--url", a});
  c.start_observer_of(b, {"--name", "b", "--url", b, "--require", "gpu"});

  // The commit that adds .ci/labels needs a gpu; the next one, without it, does not.
  std::string labelled = commit_file(a, ".ci/labels", "# where this runs\n\ngpu\n", "labels");
  git(a, {"rm", "-q", ".ci/labels"});
  git(a, {"commit", "-q", "-m", "no labels"});
  std::string unlabelled = head_commit(a);
  std::string in_b = commit_file(b, "b", "b", "b");

  ASSERT_TRUE(c.wait_result("a", unlabelled)) << logs(c, 1);
  ASSERT_TRUE(wait_until([&] { return row_of(c, "b", in_b).has_value(); }))
      << c.observer_of(1).log();
  const std::vector<std::pair<std::string, std::string>> waiting{{"a", labelled}, {"b", in_b}};
  for (const auto& [repo, commit] : waiting) {
    auto row = row_of(c, repo, commit);
    ASSERT_TRUE(row) << repo;
    EXPECT_EQ(row->state, "queued") << repo;
    EXPECT_EQ(row->waiting, "waiting for a runner with gpu") << repo;
  }

  c.start_workdir_runner({"--label", "gpu", "--test-command", kEcho});
  ASSERT_TRUE(c.wait_result("a", labelled)) << logs(c, 2);
  ASSERT_TRUE(c.wait_result("b", in_b)) << logs(c, 2);
  EXPECT_EQ(header_field(c.result("a", labelled), "runner"),
            header_field(c.result("b", in_b), "runner"));
  EXPECT_NE(header_field(c.result("a", labelled), "runner"),
            header_field(c.result("a", unlabelled), "runner"));
}

TEST(Repos, OneCommitOnASecondRepositoryIsAmongTheNextTwoToStartBehind500) {
  Cluster c;
  std::string a = c.path("a"), b = c.path("b");
  std::string root = make_master_repo(a);
  make_master_repo(b);
  import_commits(a, "master", root, 500, 1700000000);
  std::string listed = git(a, {"rev-list", "--reverse", "-n", "500", "master"});
  std::vector<std::string> backlog;
  std::istringstream in(listed);
  for (std::string id; in >> id;) backlog.push_back(id);
  ASSERT_EQ(backlog.size(), 500u);

  c.start_dispatcher();
  announce(c, "a", a);
  announce(c, "b", b);
  c.start_workdir_runner({"--test-command", "true"});
  ASSERT_TRUE(c.wait_runners(1));
  for (const auto& commit : backlog) ASSERT_NE(dispatch(c, "a", commit), 0u);
  std::string lone = commit_file(b, "b", "b", "b");
  JobId lone_job = dispatch(c, "b", lone);
  ASSERT_NE(lone_job, 0u);
  ASSERT_TRUE(c.wait_result("b", lone, 60000ms)) << logs(c, 1);

  // In the feed's order: the jobs that started after b's was queued, up to b's own.
  bool queued = false;
  int a_started_before = 0;
  bool b_started = false;
  for (const auto& e : feed_of(c)) {
    if (e.kind == EventKind::JobQueued && e.job.id == lone_job) queued = true;
    if (!queued || e.kind != EventKind::JobStarted) continue;
    if (e.job.id == lone_job) {
      b_started = true;
      break;
    }
    ++a_started_before;
  }
  EXPECT_TRUE(b_started);
  EXPECT_LE(a_started_before, 1);
  // And a's backlog is far from done: b did not just wait its turn at the end.
  EXPECT_GT(c.status_value("jobs-queued"), 100);
}

// Every path under `dir`, recursively.
std::set<std::string> tree_of(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    out.insert(it->path().string());
  }
  return out;
}

TEST(Repos, ARunnerKilledWhileCloningMakesTheCloneAgainAfterItsRestart) {
  Cluster c;
  std::string a = c.path("a");
  make_master_repo(a);
  // Big enough that cloning and checking it out takes a moment: a few thousand files
  // and a large blob of random bytes.
  run({"sh", "-c",
       "for d in $(seq 1 60); do mkdir -p many/$d; for f in $(seq 1 100); do "
       "echo $d $f > many/$d/$f; done; done; head -c 48000000 /dev/urandom > blob"},
      a);
  git(a, {"add", "many", "blob"});
  git(a, {"commit", "-q", "-m", "big"});
  std::string big = head_commit(a);

  c.start_dispatcher();
  announce(c, "a", a);
  Daemon& runner = c.start_workdir_runner({"--test-command", kEcho});
  std::string workdir = c.runner_workdir(0);
  ASSERT_TRUE(c.wait_runners(1));
  auto before = tree_of(workdir);
  ASSERT_NE(dispatch(c, "a", big), 0u);
  // The clone being made: a repository (its objects folder or HEAD) the runner did not
  // have before the job.
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& p : tree_of(workdir)) {
          std::string name = fs::path(p).filename().string();
          if (!before.count(p) && (name == "objects" || name == "HEAD")) return true;
        }
        return false;
      },
      30000ms))
      << runner.log();
  Cluster::kill_hard(runner);
  EXPECT_FALSE(file_exists(c.result_path("a", big))) << "the job ended before the kill";

  c.start_workdir_runner({"--workdir", workdir, "--test-command", kEcho});
  ASSERT_TRUE(c.wait_result("a", big)) << logs(c, 2);
  std::string result = c.result("a", big);
  EXPECT_EQ(header_field(result, "status"), "passed") << result;
  EXPECT_NE(result.find("tested " + big), std::string::npos) << result;
  // The store works: a new commit of the repository is fetched into it and tested.
  std::string next = commit_file(a, "next", "next");
  ASSERT_NE(dispatch(c, "a", next), 0u);
  ASSERT_TRUE(c.wait_result("a", next)) << logs(c, 2);
  EXPECT_EQ(header_field(c.result("a", next), "status"), "passed");
  for (const auto& [job, n] : finishes(c)) EXPECT_EQ(n, 1) << "job " << job;
}

TEST(Repos, AnUnreachableRepositoryEndsAsAnErrorAndTheRunnerStaysHealthy) {
  Cluster c;
  std::string a = c.path("a");
  std::string commit = make_master_repo(a);
  c.start_dispatcher();
  announce(c, "gone", c.path("no-such-repository"));
  announce(c, "a", a);
  c.start_workdir_runner({"--test-command", kEcho});
  ASSERT_TRUE(c.wait_runners(1));

  ASSERT_NE(dispatch(c, "gone", commit), 0u);
  ASSERT_TRUE(c.wait_result("gone", commit)) << logs(c, 1);
  std::string failed = c.result("gone", commit);
  EXPECT_EQ(header_field(failed, "status"), "error") << failed;
  // Why: the result names the repository it could not fetch.
  EXPECT_NE(failed.find("no-such-repository"), std::string::npos) << failed;

  ASSERT_NE(dispatch(c, "a", commit), 0u);
  ASSERT_TRUE(c.wait_result("a", commit)) << logs(c, 1);
  std::string passed = c.result("a", commit);
  EXPECT_EQ(header_field(passed, "status"), "passed") << passed;
  EXPECT_EQ(header_field(passed, "runner"), header_field(failed, "runner"));
  EXPECT_TRUE(c.runner(0).running());
  EXPECT_EQ(c.status_value("runners"), 1);
}

}  // namespace
}  // namespace ci::test
