// cictl against a fake dispatcher: its tables and its --json output, from typed replies.
#include "ctl/ctl.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <memory>
#include <mutex>
#include <sstream>

#include "ci/net.h"

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
  s.results_dir = "/srv/results";
  return s;
}

RunnersReply sample_runners() {
  RunnersReply r;
  r.runners.push_back({"127.0.0.1:8900", "idle", 0, 0, 4, 120});
  r.runners.push_back({"127.0.0.1:18901", "running", 7, 2, 11, 3});
  return r;
}

JobsReply sample_jobs() {
  JobsReply r;
  JobRow queued;
  queued.id = 8;
  queued.commit = kCommit;
  queued.branch = "main";
  queued.state = "queued";
  JobRow done = queued;
  done.id = 7;
  done.state = "finished";
  done.status = TestStatus::Passed;
  done.attempt = 2;
  done.runner = "127.0.0.1:8900";
  done.tests_run = 5;
  done.tests_failed = 0;
  done.duration_ms = 1500;
  r.jobs = {done, queued};
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
            "results-dir          /srv/results\n");
  EXPECT_EQ(runners_table(sample_runners()),
            "address          state    job  attempt  jobs-done  last-seen-ms\n"
            "127.0.0.1:8900   idle     -    -        4          120\n"
            "127.0.0.1:18901  running  7    2        11         3\n");
  std::string table = jobs_table(sample_jobs());
  EXPECT_EQ(table.substr(0, table.find('\n')),
            "id  commit                                    branch  state     status  attempt  "
            "runner          tests-run  tests-failed  duration-ms");
  EXPECT_NE(table.find("\n8   " + kCommit + "  main    queued    -       -        -    "),
            std::string::npos)
      << table;
}

TEST(CtlOutput, JsonShapes) {
  EXPECT_EQ(status_json(sample_status()),
            R"({"runners":2,"runners_idle":1,"runners_busy":1,"runners_unreachable":0,)"
            R"("jobs_queued":3,"jobs_running":1,"jobs_finished":12,"jobs_passed":10,)"
            R"("jobs_failed":2,"jobs_error":0,"jobs_timeout":0,"jobs_cancelled":0,)"
            R"("results_dir":"/srv/results"})"
            "\n");
  EXPECT_EQ(runners_json(sample_runners()),
            R"({"runners":[{"address":"127.0.0.1:8900","state":"idle","job":null,)"
            R"("attempt":null,"jobs_done":4,"last_seen_ms":120},)"
            R"({"address":"127.0.0.1:18901","state":"running","job":7,"attempt":2,)"
            R"("jobs_done":11,"last_seen_ms":3}]})"
            "\n");
  EXPECT_EQ(jobs_json(sample_jobs()),
            R"({"jobs":[{"id":7,"commit":")" + kCommit +
                R"(","branch":"main","state":"finished","status":"passed","attempt":2,)"
                R"("runner":"127.0.0.1:8900","tests_run":5,"tests_failed":0,"duration_ms":1500},)"
                R"({"id":8,"commit":")" +
                kCommit +
                R"(","branch":"main","state":"queued","status":null,"attempt":null,)"
                R"("runner":null,"tests_run":null,"tests_failed":null,"duration_ms":null}]})"
                "\n");
  EXPECT_EQ(runners_json(RunnersReply{}), "{\"runners\":[]}\n");
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
                                             Reply reply = Reply::err("unknown verb");
                                             if (f.verb() == "status")
                                               reply = to_reply(sample_status());
                                             if (f.verb() == "runners")
                                               reply = to_reply(sample_runners());
                                             if (f.verb() == "jobs") reply = jobs_answer();
                                             if (f.verb() == "dispatch") reply = Reply::ok({"9"});
                                             if (f.verb() == "retry")
                                               reply = Reply::ok({f.words.at(1)});
                                             if (f.verb() == "poll") reply = Reply::ok();
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
  Reply jobs_answer() {
    std::lock_guard<std::mutex> lock(mutex_);
    return jobs_answer_;
  }
  void set_jobs_answer(Reply reply) {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_answer_ = std::move(reply);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  std::mutex mutex_;
  Reply jobs_answer_ = to_reply(sample_jobs());  // guarded by mutex_
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
