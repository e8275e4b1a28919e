// The pure parts of `cictl show`: a job found by a commit prefix, the broken-by walk,
// and what is printed.
#include "ctl/show.h"

#include <gtest/gtest.h>

#include "ctl/ctl.h"

namespace ci {
namespace {

std::string commit_of(char c) { return std::string(40, c); }

TestCase passed(const std::string& name) { return {name, CaseOutcome::Passed, 3, ""}; }
TestCase failed(const std::string& name) {
  return {name, CaseOutcome::Failed, 12, "AssertionError: 1 != 2\nTraceback..."};
}

JobInfo job_of(JobId id, char commit) {
  JobInfo job;
  job.id = id;
  job.commit = commit_of(commit);
  job.branch = "main";
  job.commit_info.author = "Alice Example";
  job.commit_info.subject = "Make it faster";
  job.state = "finished";
  job.status = TestStatus::Failed;
  job.attempt = 1;
  job.runner = "127.0.0.1:8900";
  job.duration_ms = 1500;
  job.queued_ms = 1764720000000;
  job.started_ms = 1764720001000;
  job.finished_ms = 1764720002500;
  return job;
}

TEST(CtlShow, CommitPrefixes) {
  EXPECT_TRUE(is_commit_prefix("3f1c2ab"));
  EXPECT_TRUE(is_commit_prefix(commit_of('A')));
  EXPECT_FALSE(is_commit_prefix("3f1c2a"));
  EXPECT_FALSE(is_commit_prefix("3f1c2ag"));
  JobsReply jobs;
  JobRow row;
  row.commit = "abcdef0" + std::string(33, '1');
  row.id = 3;
  jobs.jobs.push_back(row);
  row.id = 5;  // a retry of the same commit: the newest is shown
  jobs.jobs.push_back(row);
  row.id = 4;
  row.commit = "abcdef9" + std::string(33, '2');
  jobs.jobs.push_back(row);
  auto found = job_of_commit(jobs, "ABCDEF01");
  ASSERT_TRUE(found.ok()) << found.error();
  EXPECT_EQ(*found, 5u);
  auto ambiguous = job_of_commit(jobs, "abcdef");
  ASSERT_FALSE(ambiguous.ok());
  EXPECT_EQ(ambiguous.error(), "'abcdef' fits several commits: abcdef0 abcdef9");
  auto none = job_of_commit(jobs, "1234567");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error(), "no job of a commit starting with '1234567'");
}

TEST(CtlShow, ACommitInSeveralRepositories) {
  JobsReply jobs;
  JobRow row;
  row.commit = "abcdef0" + std::string(33, '1');
  row.id = 3;  // the default repository
  jobs.jobs.push_back(row);
  row.id = 4;
  row.repo = "fork";
  jobs.jobs.push_back(row);
  row.id = 6;
  row.repo = "upstream";
  jobs.jobs.push_back(row);
  row.id = 9;  // a retry in the fork
  row.repo = "fork";
  jobs.jobs.push_back(row);
  EXPECT_EQ(repos_of_commit(jobs, "abcdef0"), (std::vector<std::string>{"-", "fork", "upstream"}));
  // The job found, or 0.
  auto found = [&](const std::string& prefix, const std::optional<std::string>& repo) {
    auto job = job_of_commit(jobs, prefix, repo);
    return job.ok() ? *job : JobId{0};
  };
  EXPECT_EQ(found("abcdef0", "fork"), 9u);
  EXPECT_EQ(found("ABCDEF0", "upstream"), 6u);
  EXPECT_EQ(found("abcdef0", "-"), 3u);
  EXPECT_EQ(found("abcdef0", ""), 3u);
  EXPECT_EQ(found("abcdef0", std::nullopt), 9u);  // any repository: the newest
  auto none = job_of_commit(jobs, "abcdef0", std::string("other"));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error(), "no job of a commit starting with 'abcdef0' in repository 'other'");

  // One repository: nothing to choose. Several commits or none: no answer here.
  JobsReply one;
  one.jobs = {jobs.jobs[1], jobs.jobs[3]};
  EXPECT_EQ(repos_of_commit(one, "abcdef0"), std::vector<std::string>{"fork"});
  row.commit = "abcdef9" + std::string(33, '2');
  jobs.jobs.push_back(row);
  EXPECT_TRUE(repos_of_commit(jobs, "abcdef").empty());
  EXPECT_TRUE(repos_of_commit(jobs, "1234567").empty());
}

TEST(CtlShow, BrokenByTheEarliestOfTheConsecutiveFailures) {
  JobInfo job = job_of(10, 'a');
  BrokenByWalk walk(job, {failed("t.one"), passed("t.two"), failed("t.new")});
  // Newest first: 9 and 8 fail t.one, 7 has no cases (a build error), 6 passes it.
  EXPECT_TRUE(walk.add({9, commit_of('9'), {failed("t.one"), passed("t.two")}}));
  EXPECT_TRUE(walk.add({8, commit_of('8'), {failed("t.one")}}));
  EXPECT_TRUE(walk.add({7, commit_of('7'), {}}));
  EXPECT_FALSE(walk.add({6, commit_of('6'), {passed("t.one")}}));
  EXPECT_TRUE(walk.done());
  auto found = walk.results();
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].test, "t.one");
  EXPECT_EQ(found[0].job, 8u);
  EXPECT_EQ(found[0].commit, commit_of('8'));
  EXPECT_EQ(found[0].commits_ago, 2u);
  EXPECT_FALSE(found[0].every);
  // A test new in this job that fails is broken here.
  EXPECT_EQ(found[1].test, "t.new");
  EXPECT_EQ(found[1].job, 10u);
  EXPECT_EQ(found[1].commits_ago, 0u);
  EXPECT_EQ(broken_by_text(found[1]), "broken here (it did not fail before this commit)");
  found[0].author = "Bob";
  EXPECT_EQ(broken_by_text(found[0]), "failing since 8888888 by Bob, 2 commits ago (job 8)");
}

TEST(CtlShow, FailingInEveryJobLookedAt) {
  BrokenByWalk walk(job_of(3, 'a'), {failed("t.one")});
  EXPECT_TRUE(walk.add({2, commit_of('2'), {failed("t.one")}}));
  EXPECT_TRUE(walk.add({1, commit_of('1'), {failed("t.one")}}));
  auto found = walk.results();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_TRUE(found[0].every);
  EXPECT_EQ(found[0].looked, 3u);
  EXPECT_EQ(broken_by_text(found[0]), "failing in every one of the last 3 jobs of the branch");
  // Nothing failing: nothing to walk.
  EXPECT_TRUE(BrokenByWalk(job_of(3, 'a'), {passed("t.one")}).done());
}

TEST(CtlShow, FailuresFirst) {
  auto sorted = cases_for_display(
      {passed("a"), {"z", CaseOutcome::Error, 1, "boom"}, failed("y"), failed("b")});
  std::vector<std::string> names;
  for (const auto& c : sorted) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"b", "y", "z", "a"}));
}

TEST(CtlShow, TextAndJson) {
  JobInfo job = job_of(10, 'a');
  std::vector<TestCase> cases = {passed("t.two"), failed("t.one")};
  BrokenBy b{"t.one", 8, commit_of('8'), "Bob", 2, false, 3};
  std::string text = show_text(job, cases, {b});
  EXPECT_EQ(text,
            "job       10\n"
            "commit    " +
                commit_of('a') +
                "\n"
                "branch    main\n"
                "repo      -\n"
                "author    Alice Example\n"
                "subject   Make it faster\n"
                "state     finished (failed)\n"
                "attempt   1\n"
                "runner    127.0.0.1:8900\n"
                "duration  1.5s\n"
                "queued    2025-12-03 00:00:00Z\n"
                "started   2025-12-03 00:00:01Z\n"
                "finished  2025-12-03 00:00:02Z\n"
                "\n"
                "outcome  test   duration  message\n"
                "failed   t.one  12ms      AssertionError: 1 != 2\n"
                "passed   t.two  3ms       \n"
                "\n"
                "broken by\n"
                "  t.one  failing since 8888888 by Bob, 2 commits ago (job 8)\n");
  std::string json = show_json(job, cases, {b});
  EXPECT_NE(json.find(R"("tests":[{"name":"t.one","outcome":"failed","ms":12,)"), std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("broken_by":[{"test":"t.one","every":false,"looked":3,"job":8,)"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.rfind(R"({"job":{)", 0), 0u) << json;
  EXPECT_NE(json.find(R"("id":10,)"), std::string::npos) << json;
  EXPECT_EQ(json.back(), '\n');
  // A queued job of a named repository, with the labels it requires and why it waits.
  JobInfo waiting = job_of(11, 'c');
  waiting.state = "queued";
  waiting.status.reset();
  waiting.repo = "tools";
  waiting.required = {"gpu", "py3.11"};
  waiting.waiting = "waiting for a runner with gpu";
  std::string queued = show_text(waiting, {}, {});
  EXPECT_NE(queued.find("\nrepo      tools\n"), std::string::npos) << queued;
  EXPECT_NE(queued.find("\nrequires  gpu,py3.11\n"), std::string::npos) << queued;
  EXPECT_NE(queued.find("\nwaiting   waiting for a runner with gpu\n"), std::string::npos)
      << queued;
  std::string queued_json = show_json(waiting, {}, {});
  EXPECT_NE(queued_json.find(R"("repo":"tools")"), std::string::npos) << queued_json;
  EXPECT_NE(queued_json.find(R"("waiting":"waiting for a runner with gpu")"), std::string::npos)
      << queued_json;
  std::string bare = show_text(job_of(1, 'b'), {}, {});
  EXPECT_EQ(bare.substr(bare.find("\n\n")), "\n\nno test cases reported\n");
}

TEST(CtlOutput, TimesAndDurations) {
  EXPECT_EQ(format_time_ms(0), "-");
  EXPECT_EQ(format_duration_ms(850), "850ms");
  EXPECT_EQ(format_duration_ms(12345), "12.3s");
  EXPECT_EQ(format_duration_ms(245000), "4m05s");
  EXPECT_EQ(omitted_line(42), "[... 42 bytes omitted ...]\n");
}

}  // namespace
}  // namespace ci
