// cictl's --json output when a name is not UTF-8 (git allows a branch any bytes but a
// few; an author or a reason may be in any encoding): still JSON, with U+FFFD for each
// bad sequence, never a throw that would lose the answer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ctl/ctl.h"
#include "ctl/show.h"

namespace ci {
namespace {

const std::string kReplacement = "\xef\xbf\xbd";

// Parses `text` as one JSON line; fails the test when it is not (the parser refuses
// invalid UTF-8 too).
nlohmann::json parsed(const std::string& text) {
  EXPECT_TRUE(text.ends_with("\n")) << text;
  auto j = nlohmann::json::parse(text, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << text;
  return j;
}

bool replaced(const nlohmann::json& value) {
  return value.is_string() && value.get<std::string>().find(kReplacement) != std::string::npos;
}

TEST(CtlUtf8, TablesOfRepliesGiveJsonWhateverTheirBytes) {
  JobsReply jobs;
  JobRow row;
  row.id = 3;
  row.commit = std::string(40, 'a');
  row.branch = "feat/\xff\xfe";
  row.state = "queued";
  row.waiting = "waiting for \xe2\x82";  // a character cut after two of its three bytes
  jobs.jobs = {row};
  auto j = parsed(jobs_json(jobs));
  EXPECT_TRUE(replaced(j["jobs"][0]["branch"])) << j;
  EXPECT_TRUE(replaced(j["jobs"][0]["waiting"])) << j;

  StatusReply status;
  status.results_dir = "/srv/r\xe9sultats";
  EXPECT_TRUE(replaced(parsed(status_json(status))["results_dir"]));

  ReposReply repos;
  repos.repos.push_back({"tools", "/srv/git/caf\xe9", false, 0, 0, 0});
  EXPECT_TRUE(replaced(parsed(repos_json(repos))["repos"][0]["url"]));

  EXPECT_TRUE(replaced(parsed(job_result_json(3, TestStatus::Error, "no \xc3"))["reason"]));
}

TEST(CtlUtf8, ShowGivesJsonForAJobOnSuchABranch) {
  JobInfo job;
  job.id = 9;
  job.commit = std::string(40, 'b');
  job.branch = "fix\xe2\x82";
  job.state = "finished";
  job.status = TestStatus::Failed;
  job.commit_info.author = "J\xf6rg";
  job.commit_info.subject = "caf\xe9";
  BrokenBy broken;
  broken.test = "test_\xff";
  broken.job = 9;
  broken.commit = job.commit;
  broken.author = job.commit_info.author;
  broken.looked = 1;
  std::string text;
  ASSERT_NO_THROW(
      text = show_json(job, {{"test_\xff", CaseOutcome::Failed, 3, "expected \xe9"}}, {broken}));
  auto j = parsed(text);
  EXPECT_TRUE(replaced(j["job"]["branch"])) << j;
  EXPECT_TRUE(replaced(j["job"]["commit_info"]["author"])) << j;
  EXPECT_TRUE(replaced(j["tests"][0]["name"])) << j;
  EXPECT_TRUE(replaced(j["broken_by"][0]["author"])) << j;
}

}  // namespace
}  // namespace ci
