// cictl against a fake dispatcher: its tables and its --json output, from typed replies.
#include "ctl/ctl.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <memory>
#include <mutex>
#include <sstream>

#include "ci/events.h"
#include "ci/framing.h"
#include "ci/net.h"
#include "ci/validate.h"

namespace ci {
namespace {

const std::string kCommit(40, 'a');

StatusReply sample_status() {
  StatusReply s;
  s.runners = 2;
  s.runners_idle = 1;
  s.runners_busy = 1;
  s.jobs_queued = 3;
  s.jobs_running = 1;
  s.jobs_finished = 12;
  s.jobs_passed = 10;
  s.jobs_failed = 2;
  s.jobs_waiting = 1;
  s.repos = 2;
  s.results_dir = "/srv/results";
  return s;
}

RunnersReply sample_runners() {
  RunnersReply r;
  r.runners.push_back({"127.0.0.1:8900", "idle", 0, 0, 4, 120});
  r.runners.push_back(
      {"127.0.0.1:18901", "running", 7, 2, 11, 3, 4, 1, {"gpu", "linux"}, RepoScope::All});
  return r;
}

JobsReply sample_jobs() {
  JobsReply r;
  JobRow queued;
  queued.id = 8;
  queued.commit = kCommit;
  queued.branch = "main";
  queued.state = "queued";
  queued.repo = "tools";
  queued.waiting = "waiting for a runner with gpu";
  JobRow done = queued;
  done.id = 7;
  done.state = "finished";
  done.repo = "";
  done.waiting = "";
  done.status = TestStatus::Passed;
  done.attempt = 2;
  done.runner = "127.0.0.1:8900";
  done.tests_run = 5;
  done.tests_failed = 0;
  done.duration_ms = 1500;
  r.jobs = {done, queued};
  return r;
}

ReposReply sample_repos() {
  ReposReply r;
  r.repos.push_back({"tools", "https://example.com/tools.git", false, 3, 1, 20});
  r.repos.push_back({"web", "/srv/git/web", true, 0, 0, 7});
  return r;
}

TEST(CtlOutput, TablesAreTheRepliesAligned) {
  EXPECT_EQ(status_table(sample_status()),
            "runners              2\n"
            "runners-idle         1\n"
            "runners-busy         1\n"
            "runners-unreachable  0\n"
            "jobs-queued          3\n"
            "jobs-running         1\n"
            "jobs-finished        12\n"
            "jobs-passed          10\n"
            "jobs-failed          2\n"
            "jobs-error           0\n"
            "jobs-timeout         0\n"
            "jobs-cancelled       0\n"
            "jobs-waiting         1\n"
            "repos                2\n"
            "results-dir          /srv/results\n");
  EXPECT_EQ(runners_table(sample_runners()),
            "address          state    job  attempt  jobs-done  last-seen-ms  slots  busy  "
            "labels     repos\n"
            "127.0.0.1:8900   idle     -    -        4          120           1      0     "
            "-          default\n"
            "127.0.0.1:18901  running  7    2        11         3             4      1     "
            "gpu,linux  all\n");
  // The default repository is "-"; a waiting reason is one cell, the last.
  std::string table = jobs_table(sample_jobs());
  EXPECT_EQ(table.substr(0, table.find('\n')),
            "id  commit                                    branch  state     status  attempt  "
            "runner          tests-run  tests-failed  duration-ms  repo   waiting");
  EXPECT_NE(table.find("\n7   " + kCommit +
                       "  main    finished  passed  2        127.0.0.1:8900  5          0       "
                       "      1500         -      -\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("\n8   " + kCommit +
                       "  main    queued    -       -        -               -          -       "
                       "      -            tools  waiting for a runner with gpu\n"),
            std::string::npos)
      << table;
  EXPECT_EQ(repos_table(sample_repos()),
            "name   url                            order   jobs-queued  jobs-running  "
            "jobs-finished\n"
            "tools  https://example.com/tools.git  oldest  3            1             20\n"
            "web    /srv/git/web                   newest  0            0             7\n");
}

TEST(CtlOutput, JsonShapes) {
  EXPECT_EQ(status_json(sample_status()),
            R"({"runners":2,"runners_idle":1,"runners_busy":1,"runners_unreachable":0,)"
            R"("jobs_queued":3,"jobs_running":1,"jobs_finished":12,"jobs_passed":10,)"
            R"("jobs_failed":2,"jobs_error":0,"jobs_timeout":0,"jobs_cancelled":0,)"
            R"("jobs_waiting":1,"repos":2,"results_dir":"/srv/results"})"
            "\n");
  EXPECT_EQ(runners_json(sample_runners()),
            R"({"runners":[{"address":"127.0.0.1:8900","state":"idle","job":null,)"
            R"("attempt":null,"jobs_done":4,"last_seen_ms":120,"slots":1,"busy":0,"labels":[],)"
            R"("repos":"default"},)"
            R"({"address":"127.0.0.1:18901","state":"running","job":7,"attempt":2,)"
            R"("jobs_done":11,"last_seen_ms":3,"slots":4,"busy":1,"labels":["gpu","linux"],)"
            R"("repos":"all"}]})"
            "\n");
  EXPECT_EQ(jobs_json(sample_jobs()),
            R"({"jobs":[{"id":7,"commit":")" + kCommit +
                R"(","branch":"main","state":"finished","status":"passed","attempt":2,)"
                R"("runner":"127.0.0.1:8900","tests_run":5,"tests_failed":0,"duration_ms":1500,)"
                R"("repo":"","waiting":null},)"
                R"({"id":8,"commit":")" +
                kCommit +
                R"(","branch":"main","state":"queued","status":null,"attempt":null,)"
                R"("runner":null,"tests_run":null,"tests_failed":null,"duration_ms":null,)"
                R"("repo":"tools","waiting":"waiting for a runner with gpu"}]})"
                "\n");
  EXPECT_EQ(runners_json(RunnersReply{}), "{\"runners\":[]}\n");
  EXPECT_EQ(repos_json(sample_repos()),
            R"({"repos":[{"name":"tools","url":"https://example.com/tools.git","order":"oldest",)"
            R"("jobs_queued":3,"jobs_running":1,"jobs_finished":20},)"
            R"({"name":"web","url":"/srv/git/web","order":"newest","jobs_queued":0,)"
            R"("jobs_running":0,"jobs_finished":7}]})"
            "\n");
  EXPECT_EQ(repos_json(ReposReply{}), "{\"repos\":[]}\n");
  EXPECT_EQ(job_json(42), "{\"job\":42}\n");
  EXPECT_EQ(ok_json(), "{\"ok\":true}\n");
  EXPECT_EQ(error_json("no \"such\" thing"), "{\"error\":\"no \\\"such\\\" thing\"}\n");
  // Bytes that are not UTF-8 are replaced, not thrown on.
  EXPECT_EQ(error_json("bad \xff byte"), "{\"error\":\"bad \xEF\xBF\xBD byte\"}\n");
}

// A dispatcher (and observer) that answers every query with the samples above.
class Ctl : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("CI_TOKEN_FILE");
    server_ = std::make_unique<LineServer>(ServerOptions{}, request_has_body,
                                           [this](const Frame& f, const std::string&) {
                                             record(f);
                                             Reply reply = Reply::err("unknown verb");
                                             if (f.verb() == "repos")
                                               reply = to_reply(sample_repos());
                                             if (f.verb() == "repo") reply = repo_answer();
                                             if (f.verb() == "status")
                                               reply = to_reply(sample_status());
                                             if (f.verb() == "runners")
                                               reply = to_reply(sample_runners());
                                             if (f.verb() == "jobs") reply = jobs_answer();
                                             if (f.verb() == "dispatch") reply = Reply::ok({"9"});
                                             if (f.verb() == "retry")
                                               reply = Reply::ok({f.words.at(1)});
                                             if (f.verb() == "poll") reply = Reply::ok();
                                             if (f.verb() == "cancel")
                                               reply = Reply::ok({f.words.at(1)});
                                             if (f.verb() == "logread") reply = log_answer(f);
                                             if (f.verb() == "job") reply = job_answer(f);
                                             if (f.verb() == "tests")
                                               reply = Reply::ok_with_body("");
                                             return Response{serialize_reply(reply), false};
                                           });
    ASSERT_TRUE(server_->start().ok());
  }

  // cictl asking the fake dispatcher.
  int run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--dispatcher-server", address()});
    return run_raw(args);
  }
  int run_raw(const std::vector<std::string>& args) {
    out_.str("");
    err_.str("");
    return run_ctl(args, out_, err_);
  }
  // A log whose first 100 bytes were dropped: bytes [100, 110), then the end.
  static Reply log_answer(const Frame& f) {
    bool first = f.words.at(3) == "0";
    Reply reply = Reply::ok_with_body(first ? "0123456789" : "");
    reply.args = {first ? "100" : "110", "110", first ? "0" : "1"};
    return reply;
  }
  // Every job has been cancelled; those of sample_jobs() are of their repository.
  static Reply job_answer(const Frame& f) {
    JobInfo job;
    job.id = std::stoull(f.words.at(1));
    job.commit = kCommit;
    job.branch = "main";
    for (const JobRow& row : sample_jobs().jobs)
      if (row.id == job.id) job.repo = row.repo;
    job.state = "finished";
    job.status = TestStatus::Cancelled;
    job.reason = "cancelled by request";
    return Reply::ok_with_body(serialize_job_info(job) + "\n");
  }
  Reply jobs_answer() {
    std::lock_guard<std::mutex> lock(mutex_);
    return jobs_answer_;
  }
  // The request lines received (without bodies), in order.
  void record(const Frame& f) {
    std::string line = serialize(f);
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.push_back(line.substr(0, line.find('\n')));
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }
  std::string last_request() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_.empty() ? "" : requests_.back();
  }
  size_t request_count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_.size();
  }
  Reply repo_answer() {
    std::lock_guard<std::mutex> lock(mutex_);
    return repo_answer_;
  }
  void set_repo_answer(Reply reply) {
    std::lock_guard<std::mutex> lock(mutex_);
    repo_answer_ = std::move(reply);
  }
  void set_jobs_answer(Reply reply) {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_answer_ = std::move(reply);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  std::mutex mutex_;
  Reply jobs_answer_ = to_reply(sample_jobs());  // guarded by mutex_
  Reply repo_answer_ = Reply::ok();              // guarded by mutex_
  std::vector<std::string> requests_;            // guarded by mutex_
  std::unique_ptr<LineServer> server_;
  std::ostringstream out_, err_;
};

TEST_F(Ctl, QueriesPrintTablesOrJson) {
  EXPECT_EQ(run({"status"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), status_table(sample_status()));
  EXPECT_EQ(run({"status", "--json"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), status_json(sample_status()));
  EXPECT_EQ(run({"--json", "runners"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), runners_json(sample_runners()));
  EXPECT_EQ(run({"runners"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), runners_table(sample_runners()));
  EXPECT_EQ(run({"jobs", "--limit", "5", "--json"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), jobs_json(sample_jobs()));
  EXPECT_EQ(run({"jobs"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), jobs_table(sample_jobs()));
  EXPECT_EQ(run({"repos"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), repos_table(sample_repos()));
  EXPECT_EQ(last_request(), "repos");
  EXPECT_EQ(run({"repos", "--json"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), repos_json(sample_repos()));
}

TEST_F(Ctl, RepositoriesAndLabelsGoOnTheWire) {
  EXPECT_EQ(run({"repo", "add", "tools", "https://example.com/tools.git"}), 0) << err_.str();
  EXPECT_EQ(last_request(), "repo tools https://example.com/tools.git order=oldest");
  EXPECT_EQ(out_.str(), "repository tools at https://example.com/tools.git, oldest commit first\n");
  EXPECT_EQ(run({"repo", "add", "web", "/srv/git/web", "--newest-first", "--json"}), 0)
      << err_.str();
  EXPECT_EQ(last_request(), "repo web /srv/git/web order=newest");
  EXPECT_EQ(out_.str(), "{\"ok\":true}\n");

  EXPECT_EQ(run({"dispatch", kCommit, "--repo", "tools", "--require", "py3.11", "--require", "gpu",
                 "--branch", "main"}),
            0)
      << err_.str();
  EXPECT_EQ(last_request(), "dispatch " + kCommit + " main repo=tools require=gpu,py3.11");
  EXPECT_EQ(out_.str(), "job 9\n");
  EXPECT_EQ(run({"dispatch", kCommit, "--require", "gpu"}), 0) << err_.str();
  EXPECT_EQ(last_request(), "dispatch " + kCommit + " manual require=gpu");
  EXPECT_EQ(run({"dispatch", kCommit}), 0) << err_.str();
  EXPECT_EQ(last_request(), "dispatch " + kCommit + " manual");

  EXPECT_EQ(run({"jobs", "--repo", "tools", "--limit", "5"}), 0) << err_.str();
  EXPECT_EQ(last_request(), "jobs 5 repo=tools");
  EXPECT_EQ(run({"jobs", "--repo", "-", "--status", "queued"}), 0) << err_.str();
  EXPECT_EQ(last_request(), "jobs 50 status=queued repo=-");
  // "default" is a name like any other.
  EXPECT_EQ(run({"jobs", "--repo", "default"}), 0) << err_.str();
  EXPECT_EQ(last_request(), "jobs 50 repo=default");
}

TEST_F(Ctl, BadRepositoriesAndLabelsAreNamedAndNotSent) {
  size_t before = request_count();
  EXPECT_EQ(run({"dispatch", kCommit, "--repo", kCommit}), 2);
  EXPECT_EQ(err_.str(),
            "cictl: --repo '" + kCommit + "': repository name must not be a commit id\n");
  EXPECT_EQ(run({"dispatch", kCommit, "--require", "gpu", "--require", "a/b"}), 2);
  EXPECT_EQ(err_.str().rfind("cictl: --require 'a/b': label may hold only", 0), 0u) << err_.str();
  std::vector<std::string> many = {"dispatch", kCommit};
  for (size_t i = 0; i <= kMaxLabels; ++i) {
    many.push_back("--require");
    many.push_back("l" + std::to_string(i));
  }
  EXPECT_EQ(run(many), 2);
  EXPECT_EQ(err_.str(), "cictl: --require: more than 32 labels\n");
  EXPECT_EQ(run({"jobs", "--repo", "a/b"}), 2);
  EXPECT_EQ(err_.str().rfind("cictl: --repo 'a/b': ", 0), 0u) << err_.str();
  EXPECT_NE(err_.str().find("'-': the default repository"), std::string::npos) << err_.str();
  EXPECT_EQ(run({"repo", "add", "-x", "/srv/x"}), 2);
  EXPECT_EQ(run({"repo", "add", "x", "-oProxy"}), 2);
  EXPECT_EQ(run({"repo", "add", "x", "/srv/a b"}), 2);
  EXPECT_EQ(err_.str(), "cictl: '/srv/a b': repository url contains a space or control byte\n");
  EXPECT_EQ(run({"repo", "add", "x"}), 2);
  EXPECT_EQ(run({"repo"}), 2);
  EXPECT_EQ(run({"repo", "add", "x", "/srv/x", "--json", "--newest"}), 2);
  EXPECT_EQ(out_.str(), "{\"error\":\"unknown option '--newest'\"}\n");
  EXPECT_EQ(request_count(), before);
}

TEST_F(Ctl, ARefusedAnnouncementIsAFailure) {
  set_repo_answer(Reply::err("this dispatcher serves only the default repository"));
  EXPECT_EQ(run({"repo", "add", "tools", "/srv/tools"}), 1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str(),
            "cictl: the dispatcher answered: ERR this dispatcher serves only the default "
            "repository\n");
  EXPECT_EQ(run({"repo", "add", "tools", "/srv/tools", "--json"}), 1);
  EXPECT_EQ(out_.str().rfind("{\"error\":\"the dispatcher answered: ERR", 0), 0u) << out_.str();
}

TEST_F(Ctl, CommandsThatActAnswerJobOrOk) {
  EXPECT_EQ(run({"dispatch", kCommit}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "job 9\n");
  EXPECT_EQ(run({"dispatch", kCommit, "--json"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "{\"job\":9}\n");
  EXPECT_EQ(run({"retry", "4", "--json"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "{\"job\":4}\n");
  EXPECT_EQ(run({"notify", "--observer", address()}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(run({"notify", "--observer", address(), "--json"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "{\"ok\":true}\n");
}

TEST_F(Ctl, LogSaysWhatWasOmitted) {
  EXPECT_EQ(run({"log", "3"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "[... 100 bytes omitted ...]\n0123456789");
  EXPECT_EQ(run({"log", "3", "--follow", "--json"}), 0) << err_.str();
  EXPECT_EQ(out_.str(),
            R"({"job":3,"attempt":null,"log":"[... 100 bytes omitted ...]\n0123456789",)"
            R"("bytes":110,"omitted":100,"done":true})"
            "\n");
  EXPECT_EQ(run({"log", "3", "--attempt", "0"}), 2);
  EXPECT_NE(err_.str().find("--attempt"), std::string::npos) << err_.str();
}

TEST_F(Ctl, CancelAndWait) {
  EXPECT_EQ(run({"cancel", "5"}), 0) << err_.str();
  EXPECT_EQ(out_.str(), "job 5 cancelled\n");
  EXPECT_EQ(run({"dispatch", kCommit, "--wait"}), 3) << err_.str();
  EXPECT_EQ(out_.str(), "job 9\njob 9 cancelled: cancelled by request\n");
  EXPECT_EQ(run({"dispatch", kCommit, "--wait", "--json"}), 3) << err_.str();
  EXPECT_EQ(out_.str(), R"({"job":9,"status":"cancelled","reason":"cancelled by request"})"
                        "\n");
}

TEST_F(Ctl, BadArgumentsAreNamed) {
  EXPECT_EQ(run({"jobs", "--status", "green"}), 2);
  EXPECT_EQ(err_.str().rfind("cictl: --status 'green': ", 0), 0u) << err_.str();
  EXPECT_EQ(run({"jobs", "--branch", "a..b"}), 2);
  EXPECT_EQ(err_.str().rfind("cictl: --branch 'a..b': ", 0), 0u) << err_.str();
  EXPECT_EQ(run({"show", "zz"}), 2);
  EXPECT_EQ(err_.str().rfind("cictl: 'zz': neither a job id nor a commit id", 0), 0u) << err_.str();
  EXPECT_EQ(run({"cancel", "0"}), 2);
  EXPECT_EQ(run({"cancel"}), 2);
}

TEST_F(Ctl, FailuresAreOneJsonErrorWithTheSameExitCode) {
  EXPECT_EQ(run({"frobnicate", "--json"}), 2);
  EXPECT_NE(out_.str().find("{\"error\":"), std::string::npos) << out_.str();
  EXPECT_EQ(run({"status", "--json", "--frob"}), 2);
  EXPECT_EQ(out_.str(), "{\"error\":\"unknown option '--frob'\"}\n");
  EXPECT_EQ(err_.str(), "cictl: unknown option '--frob'\nRun with --help for more information.\n");
  EXPECT_EQ(run({"dispatch", "xyz", "--json"}), 2);
  EXPECT_EQ(out_.str().rfind("{\"error\":\"'xyz': ", 0), 0u) << out_.str();
  EXPECT_EQ(run_raw({"retry", "4", "--json", "--dispatcher-server", "nowhere"}), 2);
  EXPECT_EQ(out_.str().rfind("{\"error\":\"--dispatcher-server 'nowhere': ", 0), 0u) << out_.str();
  EXPECT_EQ(run_raw({"--json", "notify", "--observer", "127.0.0.1:9"}), 1);
  EXPECT_EQ(out_.str().rfind("{\"error\":", 0), 0u) << out_.str();
  EXPECT_EQ(run_raw({"--json", "runners", "--dispatcher-server", "127.0.0.1:9"}), 1);
  EXPECT_EQ(out_.str().rfind("{\"error\":", 0), 0u) << out_.str();
}

// kCommit has jobs in the default repository (7) and in tools (8): show asks which.
TEST_F(Ctl, ShowOfACommitInSeveralRepositoriesNeedsItsRepository) {
  const std::string prefix = kCommit.substr(0, 7);
  EXPECT_EQ(run({"show", prefix}), 2);
  EXPECT_EQ(err_.str(), "cictl: '" + prefix +
                            "' has jobs in several repositories (-, tools): name one with --repo "
                            "NAME ('-': the default repository)\n");
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(run({"show", kCommit, "--json"}), 2);
  EXPECT_EQ(out_.str().rfind("{\"error\":\"'" + kCommit + "' has jobs in several repositories", 0),
            0u)
      << out_.str();

  size_t before = request_count();
  EXPECT_EQ(run({"show", prefix, "--repo", "tools"}), 0) << err_.str();
  std::vector<std::string> asked = requests();
  asked.erase(asked.begin(), asked.begin() + static_cast<std::ptrdiff_t>(before));
  ASSERT_GE(asked.size(), 2u);
  EXPECT_EQ(asked[0], "jobs 10000 repo=tools");
  EXPECT_EQ(asked[1], "job 8");
  EXPECT_EQ(out_.str().rfind("job       8\n", 0), 0u) << out_.str();
  EXPECT_NE(out_.str().find("\nrepo      tools\n"), std::string::npos) << out_.str();

  EXPECT_EQ(run({"show", prefix, "--repo", "-"}), 0) << err_.str();
  EXPECT_EQ(out_.str().rfind("job       7\n", 0), 0u) << out_.str();
  EXPECT_EQ(run({"show", prefix, "--repo", "web"}), 1);
  EXPECT_EQ(err_.str(),
            "cictl: no job of a commit starting with '" + prefix + "' in repository 'web'\n");

  // A job id is shown as before; with --repo, it must be of that repository.
  EXPECT_EQ(run({"show", "8"}), 0) << err_.str();
  EXPECT_EQ(out_.str().rfind("job       8\n", 0), 0u) << out_.str();
  EXPECT_EQ(run({"show", "8", "--repo", "tools"}), 0) << err_.str();
  EXPECT_EQ(run({"show", "7", "--repo", "tools"}), 2);
  EXPECT_EQ(err_.str(), "cictl: job 7 is not of repository 'tools' (its repository: -)\n");

  before = request_count();
  EXPECT_EQ(run({"show", prefix, "--repo", "a/b"}), 2);
  EXPECT_EQ(err_.str().rfind("cictl: --repo 'a/b': ", 0), 0u) << err_.str();
  EXPECT_EQ(request_count(), before);
}

TEST_F(Ctl, AMalformedAnswerIsAFailureNotATable) {
  set_jobs_answer(Reply::ok_with_body("id commit\n1 2\n"));
  EXPECT_EQ(run({"jobs"}), 1);
  EXPECT_EQ(out_.str(), "");
  EXPECT_EQ(err_.str().rfind("cictl: the dispatcher answered badly: jobs reply, line 1: ", 0), 0u)
      << err_.str();
  EXPECT_EQ(run({"jobs", "--json"}), 1);
  EXPECT_EQ(out_.str().rfind("{\"error\":\"the dispatcher answered badly: jobs reply", 0), 0u)
      << out_.str();
}

}  // namespace
}  // namespace ci
