#include "runner/result_spool.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ci/test_cases.h"
#include "test_support.h"

namespace ci::runner {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
namespace fs = std::filesystem;

ResultsRequest results(JobId job, std::string output) {
  return ResultsRequest{job, 1, "127.0.0.1:8900", TestStatus::Failed, 3, 1, 42, std::move(output),
                        ""};
}

class ResultSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(spool.open().ok()); }

  SpooledResult put(const ResultsRequest& r) {
    SpooledResult s = spool.prepare(r);
    EXPECT_TRUE(spool.write(s).ok());
    return s;
  }
  void write_raw(const std::string& name, const std::string& data) {
    std::ofstream(dir / ("spool/" + name), std::ios::binary) << data;
  }

  test::TempDir dir;
  ResultSpool spool{dir / "spool"};
};

TEST_F(ResultSpoolTest, KeepsTheMessageAsItGoesOnTheWire) {
  ResultsRequest r = results(5, "line\n\0bin\xff\r\nend"s);
  SpooledResult s = put(r);
  EXPECT_EQ(s.path, dir / "spool/5-1.result");
  EXPECT_EQ(test::read_text(s.path), serialize(serialize_request(Request{r})));

  std::vector<std::string> problems;
  auto loaded = spool.load(&problems);
  EXPECT_TRUE(problems.empty());
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].job, 5u);
  EXPECT_EQ(loaded[0].attempt, 1u);
  EXPECT_EQ(loaded[0].path, s.path);
  EXPECT_EQ(serialize(loaded[0].message), serialize(s.message));
}

TEST_F(ResultSpoolTest, KeepsAnEmptyOutput) {
  put(results(6, ""));
  std::vector<std::string> problems;
  auto loaded = spool.load(&problems);
  ASSERT_EQ(loaded.size(), 1u) << (problems.empty() ? "" : problems[0]);
  EXPECT_EQ(loaded[0].message.body, "");
}

TEST_F(ResultSpoolTest, LoadsOldestFirst) {
  auto now = fs::file_time_type::clock::now();
  fs::last_write_time(put(results(9, "a")).path, now - 30s);
  fs::last_write_time(put(results(3, "b")).path, now - 10s);
  fs::last_write_time(put(results(12, "c")).path, now - 20s);
  std::vector<std::string> problems;
  auto loaded = spool.load(&problems);
  ASSERT_EQ(loaded.size(), 3u);
  EXPECT_EQ(loaded[0].job, 9u);
  EXPECT_EQ(loaded[1].job, 12u);
  EXPECT_EQ(loaded[2].job, 3u);
}

TEST_F(ResultSpoolTest, SetsAsideWhatItCannotReadAndClearsInterruptedWrites) {
  std::string good = serialize(serialize_request(Request{results(1, "ok\n")}));
  write_raw("2-1.result", "garbage without a newline");
  write_raw("3-1.result", good.substr(0, good.size() - 1));  // cut short
  write_raw("4-1.result", good + "more");
  write_raw("5-1.result", "ping\n");
  write_raw("6-1.result.tmp.123.0", good);
  write_raw("running-test", "1 2 3\n");
  put(results(1, "ok\n"));

  std::vector<std::string> problems;
  auto loaded = spool.load(&problems);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].job, 1u);
  EXPECT_EQ(problems.size(), 4u);
  EXPECT_EQ(
      test::list_dir(dir / "spool"),
      (std::vector<std::string>{"1-1.result", "2-1.result.unreadable", "3-1.result.unreadable",
                                "4-1.result.unreadable", "5-1.result.unreadable", "running-test"}));
  problems.clear();
  EXPECT_EQ(spool.load(&problems).size(), 1u);
  EXPECT_TRUE(problems.empty()) << "set aside once";
}

ResultsRequest loaded_results(const SpooledResult& s) {
  auto request = parse_request(s.message);
  EXPECT_TRUE(request) << request.error();
  if (!request || !std::holds_alternative<ResultsRequest>(*request)) return {};
  return std::get<ResultsRequest>(*request);
}

TEST_F(ResultSpoolTest, KeepsTheTestCases) {
  ResultsRequest r = results(7, "out\n");
  r.cases = serialize_cases({TestCase{"m.C.test_a", CaseOutcome::Failed, 5, "1 != 2"},
                             TestCase{"m.C.test_b", CaseOutcome::Passed, 0, ""}});
  put(r);
  std::vector<std::string> problems;
  auto loaded = spool.load(&problems);
  ASSERT_EQ(loaded.size(), 1u) << (problems.empty() ? "" : problems[0]);
  ResultsRequest back = loaded_results(loaded[0]);
  EXPECT_EQ(back.output, "out\n");
  EXPECT_EQ(back.cases, r.cases);
  auto cases = parse_cases(back.cases);
  ASSERT_TRUE(cases) << cases.error();
  EXPECT_EQ(cases->size(), 2u);
}

// A result spooled before results carried test cases is still delivered as it was.
TEST_F(ResultSpoolTest, ReadsAResultInTheFormatBeforeTestCases) {
  write_raw("8-2.result", "results 8 2 127.0.0.1:8900 passed 1 0 12 6\nhello\n");
  std::vector<std::string> problems;
  auto loaded = spool.load(&problems);
  ASSERT_EQ(loaded.size(), 1u) << (problems.empty() ? "" : problems[0]);
  EXPECT_EQ(loaded[0].job, 8u);
  ResultsRequest back = loaded_results(loaded[0]);
  EXPECT_EQ(back.status, TestStatus::Passed);
  EXPECT_EQ(back.output, "hello\n");
  EXPECT_EQ(back.cases, "");
}

TEST_F(ResultSpoolTest, RemoveDeletesTheFileAndToleratesItsAbsence) {
  SpooledResult s = put(results(5, "x"));
  EXPECT_TRUE(spool.remove(s).ok());
  EXPECT_FALSE(test::file_exists(s.path));
  EXPECT_TRUE(spool.remove(s).ok());
  std::vector<std::string> problems;
  EXPECT_TRUE(spool.load(&problems).empty());
}

}  // namespace
}  // namespace ci::runner
