// The daemons' log line format.
#include "ci/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>

#include "ci/validate.h"

namespace ci {
namespace {

// What a peer or a repository wrote reaches the log as one line of printable ASCII:
// a branch name or a commit subject in UTF-8, an invalid byte, a terminal escape, a
// line break.
TEST(Log, EveryLineIsPrintableAsciiWhateverTheMessageHolds) {
  std::ostringstream out;
  spdlog::logger logger("ci-test", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
  set_log_format(logger);
  logger.info("dispatched commit {} on branch {}: {}", std::string(40, 'a'), "caf\xc3\xa9-\xff\x80",
              "subject\x1b[2J\nforged line \\x41");
  std::string line = out.str();
  EXPECT_NE(
      line.find(" ci-test info dispatched commit " + std::string(40, 'a') +
                " on branch caf\\xc3\\xa9-\\xff\\x80: subject\\x1b[2J\\x0aforged line \\x41\n"),
      std::string::npos)
      << line;
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  for (unsigned char c : line.substr(0, line.size() - 1))
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "byte " << static_cast<int>(c) << " in " << line;
}

TEST(Log, TextEscapedForTheLogComesOutUnchanged) {
  std::string branch = "f\xc3\xbc\\r";
  std::string escaped = escape_for_log(branch);
  EXPECT_EQ(escaped, "f\\xc3\\xbc\\x5cr");
  EXPECT_EQ(escape_log_message(escaped), escaped);
  EXPECT_EQ(escape_log_message("caf\xc3\xa9\t\x7f"), "caf\\xc3\\xa9\\x09\\x7f");
}

}  // namespace
}  // namespace ci
