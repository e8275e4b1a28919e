// LogBuffer: what the live log keeps while the dispatcher has not confirmed it.
#include <gtest/gtest.h>

#include "runner/log_stream.h"

namespace ci::runner {
namespace {

// Sends everything the buffer holds, `max` bytes a chunk, as a dispatcher that takes
// every chunk would see it; gaps marked as the dispatcher marks them.
std::string drain(LogBuffer& buffer, uint64_t* received, size_t max = 1000) {
  std::string seen;
  while (auto chunk = buffer.next(max)) {
    if (chunk->offset > *received) seen += "[" + std::to_string(chunk->offset - *received) + "]";
    if (chunk->offset + chunk->bytes.size() > *received)
      seen += chunk->bytes.substr(*received > chunk->offset ? *received - chunk->offset : 0);
    *received = std::max(*received, chunk->offset + chunk->bytes.size());
    buffer.confirmed(*received);
  }
  return seen;
}

TEST(LogBuffer, SendsEverythingInOrderWhenKeptUpWith) {
  LogBuffer buffer(100);
  uint64_t received = 0;
  std::string all, seen;
  for (int i = 0; i < 50; ++i) {
    std::string line = "line " + std::to_string(i) + "\n";
    all += line;
    buffer.append(line);
    seen += drain(buffer, &received, 7);
  }
  EXPECT_EQ(seen, all);
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.total(), all.size());
}

TEST(LogBuffer, KeepsTheHeadAndTheTailWhileNothingIsConfirmed) {
  LogBuffer buffer(10);  // 5 bytes of head, 5 to 7 of tail
  std::string all;
  for (char c = 'a'; c <= 'z'; ++c) {
    all += c;
    buffer.append(std::string(1, c));
    EXPECT_LE(buffer.held(), 13u);
  }
  uint64_t received = 0;
  std::string seen = drain(buffer, &received);
  // The head, then the gap the dispatcher marks, then the newest bytes.
  EXPECT_TRUE(seen.starts_with("abcde[")) << seen;
  EXPECT_TRUE(seen.ends_with("vwxyz")) << seen;
  EXPECT_EQ(received, 26u);
}

TEST(LogBuffer, ALargeAppendKeepsOnlyItsEnd) {
  LogBuffer buffer(1000);
  buffer.append(std::string(100000, 'x') + "END");
  EXPECT_LE(buffer.held(), 1250u);
  uint64_t received = 0;
  std::string seen = drain(buffer, &received, 100000);
  EXPECT_EQ(received, 100003u);
  EXPECT_TRUE(seen.ends_with("xEND")) << seen.size();
  EXPECT_NE(seen.find("[" + std::to_string(100003 - 500 - 500) + "]"), std::string::npos)
      << seen.substr(0, 600);
}

TEST(LogBuffer, PartOfAChunkConfirmedLeavesTheRest) {
  LogBuffer buffer(100);
  buffer.append("hello world");
  buffer.confirmed(6);
  auto chunk = buffer.next(100);
  ASSERT_TRUE(chunk);
  EXPECT_EQ(chunk->offset, 6u);
  EXPECT_EQ(chunk->bytes, "world");
  buffer.confirmed(1000);  // more than was ever appended: all of it
  EXPECT_TRUE(buffer.empty());
  buffer.append("!");
  chunk = buffer.next(100);
  ASSERT_TRUE(chunk);
  EXPECT_EQ(chunk->offset, 11u);
}

// A dispatcher that lost what it had (restarted) asks for an earlier offset: the
// earliest byte still held comes next.
TEST(LogBuffer, AnOffsetNoLongerHeldSendsFromTheEarliestHeld) {
  LogBuffer buffer(100);
  buffer.append("abcdef");
  buffer.confirmed(4);
  buffer.confirmed(0);
  auto chunk = buffer.next(100);
  ASSERT_TRUE(chunk);
  EXPECT_EQ(chunk->offset, 4u);
  EXPECT_EQ(chunk->bytes, "ef");
}

}  // namespace
}  // namespace ci::runner
