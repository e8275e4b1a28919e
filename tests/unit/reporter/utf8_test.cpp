// Names that are not UTF-8: git allows a branch any bytes but a few, and an author, a
// subject or a test's name may be in any encoding. The badge stays a well-formed XML
// document, and the JSON API, the event stream and the notifications stay JSON, with
// U+FFFD for each bad sequence.
#include <gtest/gtest.h>

#include <pugixml.hpp>

#include "reporter_fixture.h"

namespace ci::reporter::test_peer {
namespace {

using namespace std::chrono_literals;

const std::string kBadBranch = "feat/\xff\xfe";  // bytes no UTF-8 text holds
const std::string kCutBranch = "fix\xe2\x82";    // a three-byte character cut after two
const std::string kReplacement = "\xef\xbf\xbd";

// True when `text` is valid UTF-8: the JSON library refuses to write anything else.
bool is_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

JobInfo done(JobId id, const std::string& commit, TestStatus status, const std::string& branch) {
  JobInfo job = make_job(id, commit, branch, "finished", "J\xf6rg");  // Latin-1, not UTF-8
  job.commit_info.subject = "caf\xe9 \xc3";
  job.status = status;
  job.attempt = 1;
  job.tests_run = 1;
  job.tests_failed = status == TestStatus::Passed ? 0 : 1;
  return job;
}

// Jobs 1 (kBadBranch, failed, with a failing test whose name is not UTF-8) and 2
// (kCutBranch, passed).
void feed_bad_names(FakeFeed& feed) {
  TestCase failing = test_case("test_\xff", CaseOutcome::Failed);
  failing.message = "expected \xe9";
  feed.add(finished(done(1, "c1", TestStatus::Failed, kBadBranch), {failing}));
  feed.add(finished(done(2, "c2", TestStatus::Passed, kCutBranch), {}));
}

using Utf8Test = ReporterTest;

TEST_F(Utf8Test, BadgesOfBranchesThatAreNotUtf8AreWellFormedXml) {
  start();
  feed_bad_names(feed);
  ASSERT_TRUE(jobs_listed(2));
  struct Case {
    std::string target, state;
  };
  // The URL holds the branch's own bytes, escaped as a browser escapes them.
  for (const Case& c :
       {Case{"/badge/feat/%FF%FE.svg", "failing"}, Case{"/badge/fix%E2%82.svg", "passing"},
        Case{"/badge/%C0%AF%ED%A0%80.svg", "unknown"},  // overlong, surrogate
        Case{"/badge/%EF%BF%BE.svg", "unknown"}}) {     // U+FFFE: not in XML
    HttpResult r = get(c.target);
    ASSERT_EQ(r.status, 200) << c.target;
    EXPECT_TRUE(is_utf8(r.body)) << c.target << ": " << r.body;
    pugi::xml_document doc;
    pugi::xml_parse_result parsed = doc.load_string(r.body.c_str());
    ASSERT_TRUE(parsed) << c.target << ": " << parsed.description() << ": " << r.body;
    std::string title = doc.child("svg").child_value("title");
    EXPECT_TRUE(title.ends_with(": " + c.state)) << c.target << ": " << title;
    EXPECT_NE(title.find(kReplacement), std::string::npos) << c.target << ": " << title;
    EXPECT_EQ(title.find("\xef\xbf\xbe"), std::string::npos) << c.target << ": " << title;
  }
  // Cut to its first 64 bytes, a long name is not cut inside a replacement character.
  std::string long_target = "/badge/";
  for (int i = 0; i < 40; ++i) long_target += "%FF";
  HttpResult r = get(long_target + ".svg");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(is_utf8(r.body)) << r.body;
  pugi::xml_document doc;
  EXPECT_TRUE(doc.load_string(r.body.c_str())) << r.body;
}

TEST_F(Utf8Test, TheJsonApiRepairsNamesAndFindsThemByTheirBytes) {
  start();
  feed_bad_names(feed);
  ASSERT_TRUE(jobs_listed(2));
  for (const std::string& target :
       {std::string("/api/jobs"), std::string("/api/jobs/1"), std::string("/api/jobs/1/tests"),
        std::string("/api/branches"), std::string("/api/repos"), "/api/commits/" + sha("c1")}) {
    HttpResult r = get(target);
    ASSERT_EQ(r.status, 200) << target << ": " << r.body;
    EXPECT_TRUE(is_utf8(r.body)) << target;
    EXPECT_FALSE(nlohmann::json::parse(r.body, nullptr, false).is_discarded()) << target;
  }
  auto jobs = get_json("/api/jobs")["jobs"];
  ASSERT_EQ(jobs.size(), 2u);
  std::string branch = jobs[1]["branch"];
  EXPECT_TRUE(branch.starts_with("feat/") && branch.find(kReplacement) != std::string::npos)
      << branch;
  EXPECT_NE(jobs[1]["author"].get<std::string>().find(kReplacement), std::string::npos);
  auto tests = get_json("/api/jobs/1/tests")["cases"];
  ASSERT_EQ(tests.size(), 1u);
  EXPECT_NE(tests[0]["name"].get<std::string>().find(kReplacement), std::string::npos);

  // ?branch= with the branch's own bytes finds its jobs, as the badge does.
  auto only = get_json("/api/jobs?branch=feat/%FF%FE")["jobs"];
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0]["id"], 1);
  only = get_json("/api/jobs?branch=fix%E2%82")["jobs"];
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0]["id"], 2);
}

// A reporter that starts after the feed forgot the events rebuilds from a snapshot:
// the dispatcher's snapshot of such jobs is JSON too.
TEST_F(Utf8Test, ASnapshotOfSuchJobsIsRead) {
  feed.start();
  feed_bad_names(feed);
  feed.trim(2);
  start_reporter(options());
  ASSERT_TRUE(jobs_listed(2));
  auto jobs = get_json("/api/jobs")["jobs"];
  for (const auto& job : jobs)
    EXPECT_NE(job["branch"].get<std::string>().find(kReplacement), std::string::npos) << job;
  HttpResult r = get("/badge/feat/%FF%FE.svg");
  EXPECT_NE(r.body.find("failing"), std::string::npos) << r.body;
}

TEST_F(Utf8Test, TheEventStreamSendsJson) {
  start();
  SseReader stream(port, "/api/events");
  ASSERT_TRUE(stream.wait_open());
  feed_bad_names(feed);
  ASSERT_TRUE(stream.wait_events(2)) << stream.text();
  for (const auto& e : stream.events()) {
    EXPECT_TRUE(is_utf8(e.data)) << e.data;
    auto data = nlohmann::json::parse(e.data, nullptr, false);
    ASSERT_FALSE(data.is_discarded()) << e.data;
    EXPECT_NE(data["job"]["branch"].get<std::string>().find(kReplacement), std::string::npos);
  }
}

TEST_F(Utf8Test, NotificationsAreJsonForWebhooksAndCommands) {
  WebhookReceiver receiver([](size_t) { return 200; });
  test::TempDir out, staging;
  feed.start();
  ReporterOptions o = options();
  o.notify.webhooks = {receiver.url()};
  // Written in a folder of its own and then moved: a file in `out` is complete.
  o.notify.commands = {"cat > '" + staging.path() + "'/\"$CI_DELIVERY_ID\" && mv '" +
                       staging.path() + "'/\"$CI_DELIVERY_ID\" '" + out.path() + "'/"};
  o.notify.retry_initial = 10ms;
  o.notify.retry_max = 50ms;
  o.notify.timeout = 30s;
  start_reporter(std::move(o));
  // job.finished twice, and branch.failing as the branch passed and then failed.
  feed.add(finished(done(1, "c1", TestStatus::Passed, kBadBranch), {}));
  feed.add(finished(done(2, "c2", TestStatus::Failed, kBadBranch), {}));
  ASSERT_TRUE(test::wait_until([&] {
    return receiver.accepted().size() == 3 && test::list_dir(out.path()).size() == 3;
  })) << receiver.accepted().size()
      << " webhooks, " << test::list_dir(out.path()).size() << " commands";
  std::vector<std::string> bodies = receiver.accepted();
  for (const auto& name : test::list_dir(out.path())) bodies.push_back(test::read_text(out / name));
  for (const auto& b : bodies) {
    EXPECT_TRUE(is_utf8(b)) << b;
    auto body = nlohmann::json::parse(b, nullptr, false);
    ASSERT_FALSE(body.is_discarded()) << b;
    EXPECT_NE(body["job"]["branch"].get<std::string>().find(kReplacement), std::string::npos) << b;
    if (body["event"] == "branch.failing") {
      EXPECT_NE(body["broken_by"]["author"].get<std::string>().find(kReplacement),
                std::string::npos)
          << b;
    }
  }
}

}  // namespace
}  // namespace ci::reporter::test_peer
