#include "runner/test_reports.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "test_support.h"

namespace ci::runner {
namespace {

using test::TempDir;

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

const TestCase* find_case(const ReportCases& r, const std::string& name) {
  for (const auto& c : r.cases)
    if (c.name == name) return &c;
  return nullptr;
}

bool notes_say(const ReportCases& r, const std::string& text) {
  for (const auto& note : r.notes)
    if (note.find(text) != std::string::npos) return true;
  return false;
}

// As pytest --junitxml writes it (pytest 7).
constexpr char kPytest[] = R"(<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4" time="0.05">
<testcase classname="tests.test_math" name="test_add" time="0.001" />
<testcase classname="tests.test_math" name="test_sub[2-1]" time="1.250"><failure message="assert 1 == 2">def test_sub():
&gt;       assert 1 == 2
E       assert 1 == 2</failure></testcase>
<testcase classname="tests.test_math" name="test_io" time="0.002"><error message="failed on setup with &quot;OSError&quot;">trace</error></testcase>
<testcase classname="tests.test_math" name="test_net" time="0.000"><skipped type="pytest.skip" message="needs network">/x.py:3: needs network</skipped></testcase>
</testsuite></testsuites>)";

TEST(JunitReports, PytestShape) {
  TempDir dir;
  write(dir / "pytest.xml", kPytest);
  auto r = read_junit_dir(dir.path());
  EXPECT_EQ(r.files, 1u);
  ASSERT_EQ(r.cases.size(), 4u);
  EXPECT_EQ(r.cases[0], (TestCase{"tests.test_math.test_add", CaseOutcome::Passed, 1, ""}));
  EXPECT_EQ(r.cases[1], (TestCase{"tests.test_math.test_sub[2-1]", CaseOutcome::Failed, 1250,
                                  "assert 1 == 2"}));
  EXPECT_EQ(r.cases[2].outcome, CaseOutcome::Error);
  EXPECT_EQ(r.cases[2].message, "failed on setup with \"OSError\"");
  EXPECT_EQ(r.cases[3],
            (TestCase{"tests.test_math.test_net", CaseOutcome::Skipped, 0, "needs network"}));
  EXPECT_TRUE(r.notes.empty());
}

// A failure without a message attribute takes its text; nested suites are read.
TEST(JunitReports, NestedSuitesAndMessagesFromText) {
  auto r = ReportCases{};
  read_junit(R"(<testsuites><testsuite name="a"><testsuite name="b">
      <testcase name="t1"><failure><![CDATA[line 1
line 2]]></failure></testcase></testsuite>
      <testcase name="t2" classname="" time="nan"/></testsuite></testsuites>)",
             "n.xml", {}, &r);
  ASSERT_EQ(r.cases.size(), 2u);
  EXPECT_EQ(r.cases[0], (TestCase{"t1", CaseOutcome::Failed, 0, "line 1\nline 2"}));
  EXPECT_EQ(r.cases[1], (TestCase{"t2", CaseOutcome::Passed, 0, ""}));
}

// A real report: this very executable, run with --gtest_output=xml, plus the shape of
// a failure and a disabled test as GoogleTest writes them.
TEST(JunitReports, GoogleTestShape) {
  TempDir dir;
  test::run({"/proc/self/exe",
             "--gtest_filter=UnittestSummary.AllPassed:UnittestSummary.OneFailure",
             "--gtest_output=xml:" + (dir / "gtest.xml")});
  write(dir / "gtest-failure.xml", R"(<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="2" failures="1" disabled="1" errors="0" name="AllTests">
  <testsuite name="Math" tests="2" failures="1" disabled="1">
    <testcase name="Adds" status="run" result="completed" time="0.002" classname="Math">
      <failure message="math_test.cc:10&#x0A;Expected equality of these values:&#x0A;  1&#x0A;  2" type=""><![CDATA[math_test.cc:10
Expected equality]]></failure>
    </testcase>
    <testcase name="DISABLED_Slow" status="notrun" result="suppressed" time="0" classname="Math" />
  </testsuite>
</testsuites>)");
  auto r = read_junit_dir(dir.path());
  EXPECT_EQ(r.files, 2u);
  ASSERT_EQ(r.cases.size(), 4u) << testing::PrintToString(r.notes);
  const TestCase* adds = find_case(r, "Math.Adds");
  ASSERT_TRUE(adds);
  EXPECT_EQ(adds->outcome, CaseOutcome::Failed);
  EXPECT_EQ(adds->duration_ms, 2u);
  EXPECT_EQ(adds->message.substr(0, 15), "math_test.cc:10");
  ASSERT_TRUE(find_case(r, "Math.DISABLED_Slow"));
  EXPECT_EQ(find_case(r, "Math.DISABLED_Slow")->outcome, CaseOutcome::Skipped);
  ASSERT_TRUE(find_case(r, "UnittestSummary.AllPassed"));
  EXPECT_EQ(find_case(r, "UnittestSummary.OneFailure")->outcome, CaseOutcome::Passed);
}

TEST(JunitReports, HostileFilesAreSkippedWithAReason) {
  TempDir dir;
  write(dir / "a-malformed.xml", "<testsuite><testcase name='x'>");
  write(dir / "b-entities.xml",
        "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 "
        "'&lol;&lol;&lol;'>]><testsuite><testcase name='&lol2;'/></testsuite>");
  write(dir / "c-external.xml",
        "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><testsuite><testcase "
        "name='&e;'/></testsuite>");
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "<testsuite>";
  deep += "<testcase name='deep'/>";
  for (int i = 0; i < 100000; ++i) deep += "</testsuite>";
  write(dir / "d-deep.xml", deep);
  write(dir / "e-huge.xml", "<testsuite>" + std::string(2000, ' ') + "</testsuite>");
  ASSERT_EQ(::symlink("/etc/passwd", (dir / "f-link.xml").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir / "g-fifo.xml").c_str(), 0600), 0);
  write(dir / "h-binary.xml", std::string("\xFF\xFE<\0t\0", 6));
  write(dir / "i-undeclared-entity.xml", "<testsuite><testcase name='a&unknown;b'/></testsuite>");
  write(dir / "not-a-report.txt", "<testsuite><testcase name='no'/></testsuite>");
  ReportLimits limits;
  limits.max_file = 1000;
  auto r = read_junit_dir(dir.path(), limits);
  EXPECT_TRUE(notes_say(r, "report a-malformed.xml skipped: not XML")) << r.notes.size();
  EXPECT_TRUE(notes_say(r, "report b-entities.xml skipped: it has a DOCTYPE"));
  EXPECT_TRUE(notes_say(r, "report c-external.xml skipped: it has a DOCTYPE"));
  EXPECT_TRUE(notes_say(r, "report e-huge.xml skipped: 2023 bytes, more than 1000"));
  EXPECT_TRUE(notes_say(r, "report f-link.xml skipped"));
  EXPECT_TRUE(notes_say(r, "report g-fifo.xml skipped: not a regular file"));
  EXPECT_TRUE(notes_say(r, "report h-binary.xml skipped: not XML"));
  for (const auto& note : r.notes) EXPECT_EQ(note.find('\n'), std::string::npos) << note;
  EXPECT_EQ(find_case(r, "no"), nullptr);

  // The deep file, within the size limit this time: parsed, but suites past the depth
  // limit are not read.
  limits.max_file = 32u << 20;
  auto deep_read = read_junit_dir(dir.path(), limits);
  EXPECT_TRUE(notes_say(deep_read, "report d-deep.xml: suites nested deeper than 64 levels"));
  EXPECT_EQ(find_case(deep_read, "deep"), nullptr);
  // An undeclared entity is text, never expanded.
  ASSERT_TRUE(find_case(deep_read, "a&unknown;b"));
}

TEST(JunitReports, CasesPastTheLimitAreCountedNotKept) {
  std::string xml = "<testsuite>";
  for (size_t i = 0; i < TestCaseLimits::kMaxCases + 3; ++i)
    xml += "<testcase name='t" + std::to_string(i) + "'/>";
  xml += "</testsuite>";
  TempDir dir;
  write(dir / "many.xml", xml);
  auto r = read_junit_dir(dir.path());
  EXPECT_EQ(r.cases.size(), TestCaseLimits::kMaxCases);
  EXPECT_EQ(r.dropped, 3u);
  EXPECT_TRUE(notes_say(r, "3 test cases past the first 20000 left out"));
}

TEST(JunitReports, LongAndInvalidTextIsBounded) {
  ReportCases r;
  read_junit("<testsuite><testcase name='" + std::string(5000, 'n') + "\xFF'><failure message='" +
                 std::string(100000, 'm') + "'/></testcase></testsuite>",
             "x.xml", {}, &r);
  ASSERT_EQ(r.cases.size(), 1u);
  EXPECT_EQ(r.cases[0].name.size(), TestCaseLimits::kMaxName);
  EXPECT_EQ(r.cases[0].message.size(), TestCaseLimits::kMaxMessage);
}

TEST(JunitReports, AMissingFolderSaysSo) {
  auto r = read_junit_dir("/nonexistent/reports");
  EXPECT_TRUE(r.cases.empty());
  EXPECT_TRUE(notes_say(r, "cannot open the reports folder"));
}

}  // namespace
}  // namespace ci::runner
