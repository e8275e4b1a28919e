#include "ci/framing.h"

#include <gtest/gtest.h>

#include "ci/protocol.h"

namespace ci {
namespace {

FrameParser request_parser(FrameLimits limits = {}) {
  return FrameParser(limits, request_has_body);
}

TEST(Framing, HeaderWordsSplitOnSpacesAndTabs) {
  auto p = request_parser();
  size_t used = 0;
  ASSERT_EQ(p.feed("  dispatch\tabc   main \r\n", &used), FrameParser::Status::Done);
  auto f = p.take();
  EXPECT_EQ(f.words, (std::vector<std::string>{"dispatch", "abc", "main"}));
  EXPECT_FALSE(f.has_body);
}

TEST(Framing, ByteAtATimeGivesTheSameFrame) {
  std::string bytes = "results 1 1 h:1 passed 2 1 10 5\nab:cd";
  auto p = request_parser();
  Frame f;
  for (size_t i = 0; i < bytes.size(); ++i) {
    size_t used = 0;
    auto s = p.feed(std::string_view(bytes).substr(i, 1), &used);
    EXPECT_EQ(used, 1u);
    if (i + 1 < bytes.size()) {
      ASSERT_EQ(s, FrameParser::Status::NeedMore) << i;
    } else {
      ASSERT_EQ(s, FrameParser::Status::Done);
      f = p.take();
    }
  }
  EXPECT_TRUE(f.has_body);
  EXPECT_EQ(f.body, "ab:cd");
  EXPECT_EQ(f.words.size(), 8u);  // the length word is taken off
}

TEST(Framing, TwoMessagesInOneRead) {
  std::string bytes = "ping\nstatus\n";
  auto p = request_parser();
  size_t used = 0;
  ASSERT_EQ(p.feed(bytes, &used), FrameParser::Status::Done);
  EXPECT_EQ(p.take().verb(), "ping");
  std::string_view rest = std::string_view(bytes).substr(used);
  ASSERT_EQ(p.feed(rest, &used), FrameParser::Status::Done);
  EXPECT_EQ(p.take().verb(), "status");
}

TEST(Framing, PausedBeforeABodyTheHeaderCanBeLookedAtFirst) {
  std::string bytes = "results 1 1 h:1 passed 2 1 10 5\nab:cdping\n";
  auto p = request_parser();
  p.pause_before_body(true);
  size_t used = 0;
  ASSERT_EQ(p.feed(bytes, &used), FrameParser::Status::BodyNext);
  // Nothing of the body is taken yet.
  EXPECT_EQ(used, bytes.find('\n') + 1);
  EXPECT_EQ(p.words().front(), "results");
  EXPECT_EQ(p.body_length(), 5u);
  EXPECT_TRUE(p.in_message());
  std::string_view rest = std::string_view(bytes).substr(used);
  ASSERT_EQ(p.feed(rest, &used), FrameParser::Status::Done);
  EXPECT_EQ(p.take().body, "ab:cd");
  // A message without a body does not pause.
  rest.remove_prefix(used);
  ASSERT_EQ(p.feed(rest, &used), FrameParser::Status::Done);
  EXPECT_EQ(p.take().verb(), "ping");
  EXPECT_EQ(p.body_length(), 0u);
}

TEST(Framing, HeaderTooLongIsBadBeforeTheNewlineArrives) {
  auto p = request_parser(FrameLimits{64, 1024});
  size_t used = 0;
  EXPECT_EQ(p.feed(std::string(65, 'x'), &used), FrameParser::Status::Bad);
  EXPECT_NE(p.error().find("longer than 64"), std::string::npos);
}

TEST(Framing, BodyTooLongIsBadWithoutReadingIt) {
  auto p = request_parser(FrameLimits{4096, 100});
  size_t used = 0;
  EXPECT_EQ(p.feed("results 1 1 h:1 passed 1 0 5 101\n", &used), FrameParser::Status::Bad);
  EXPECT_NE(p.error().find("body too long"), std::string::npos);
}

TEST(Framing, EmptyLineAndControlBytesAreBad) {
  for (std::string bytes : {std::string("\n"), std::string("   \r\n"), std::string("sta\0tus\n", 8),
                            std::string("ping\x01\n")}) {
    auto p = request_parser();
    size_t used = 0;
    EXPECT_EQ(p.feed(bytes, &used), FrameParser::Status::Bad) << bytes;
  }
}

TEST(Framing, BodyShorterThanDeclaredNeedsMore) {
  auto p = request_parser();
  size_t used = 0;
  EXPECT_EQ(p.feed("results 1 1 h:1 passed 1 0 5 10\nabc", &used), FrameParser::Status::NeedMore);
  EXPECT_TRUE(p.in_message());
}

TEST(Framing, SerializeAppendsTheBodyLength) {
  EXPECT_EQ(serialize(make_frame_with_body({"results", "1"}, "xyz")), "results 1 3\nxyz");
  EXPECT_EQ(serialize(make_frame({"OK"})), "OK\n");
  EXPECT_EQ(serialize(make_frame_with_body({"OK"}, "")), "OK 0\n");
}

}  // namespace
}  // namespace ci
