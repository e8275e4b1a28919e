#include "dispatcher/result_writer.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace ci {
namespace {

// A job restored from a store written before commit ids were made lower case on
// arrival still gets the one file name of its commit.
TEST(ResultWriter, FileIsNamedByTheCommitIdInLowerCase) {
  test::TempDir dir;
  ResultWriter writer(dir / "test_results");
  ASSERT_TRUE(writer.prepare().ok());
  Job job;
  job.id = 1;
  job.commit = "ABCDEF0123456789ABCDEF0123456789ABCDEF01";
  job.branch = "main";
  JobOutcome out;
  out.status = TestStatus::Passed;
  out.attempt = 1;
  ASSERT_TRUE(writer.write(job, out, "ok\n").ok());
  EXPECT_EQ(test::list_dir(dir / "test_results"),
            std::vector<std::string>{"abcdef0123456789abcdef0123456789abcdef01"});
  EXPECT_EQ(writer.path_for(job.commit),
            dir / "test_results/abcdef0123456789abcdef0123456789abcdef01");
  EXPECT_EQ(test::read_text(writer.path_for(job.commit))
                .find("commit: abcdef0123456789abcdef0123456789abcdef01\n"),
            0u);
}

TEST(ResultWriter, WritesHeaderThenOutputByteForByte) {
  test::TempDir dir;
  ResultWriter writer(dir / "test_results");
  ASSERT_TRUE(writer.prepare().ok());
  Job job;
  job.id = 7;
  job.commit = std::string(40, 'd');
  job.branch = "feature/x";
  JobOutcome out;
  out.status = TestStatus::Failed;
  out.tests_run = 2;
  out.tests_failed = 1;
  out.runner = "127.0.0.1:8900";
  out.attempt = 1;
  out.duration_ms = 1500;
  std::string output("a:b:c\n\x00\xff tail", 14);
  ASSERT_TRUE(writer.write(job, out, output).ok());
  std::string text = test::read_text(dir / ("test_results/" + job.commit));
  EXPECT_NE(text.find("status: failed\n"), std::string::npos);
  EXPECT_NE(text.find("tests-run: 2\ntests-failed: 1\n"), std::string::npos);
  EXPECT_NE(text.find("branch: feature/x\n"), std::string::npos);
  EXPECT_NE(text.find("runner: 127.0.0.1:8900\n"), std::string::npos);
  // The output follows the blank line after the header, unchanged (the chapter's
  // version turned every ':' into a newline).
  size_t blank = text.find("\n\n");
  ASSERT_NE(blank, std::string::npos);
  EXPECT_EQ(text.substr(blank + 2), output);
  // No temporary file is left behind.
  EXPECT_EQ(test::list_dir(dir / "test_results"), std::vector<std::string>{job.commit});
}

}  // namespace
}  // namespace ci
