#include "ci/process.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace ci {
namespace {

// CappedOutput against the obvious model: the first cap / 2 bytes, the note on what
// was cut, the last cap - cap / 2 bytes.
std::string expected_capped(const std::string& all, size_t cap) {
  if (all.size() <= cap) return all;
  size_t head = cap / 2, tail = cap - cap / 2;
  return all.substr(0, head) + "\n[... " + std::to_string(all.size() - cap) +
         " bytes of output cut here ...]\n" + all.substr(all.size() - tail);
}

std::string numbered(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return s;
}

TEST(CappedOutput, ExactlyTheCapIsKeptWhole) {
  CappedOutput out(10);
  out.append("0123456789", 10);
  EXPECT_EQ(out.total(), 10u);
  EXPECT_EQ(out.finish(), "0123456789");
}

TEST(CappedOutput, OneByteOverTheCapCutsOneByteFromTheMiddle) {
  CappedOutput out(10);
  out.append("0123456789", 10);
  out.append("A", 1);
  EXPECT_EQ(out.total(), 11u);
  EXPECT_EQ(out.finish(), "01234\n[... 1 bytes of output cut here ...]\n6789A");
}

TEST(CappedOutput, AnOddCapGivesTheTailTheExtraByte) {
  CappedOutput out(5);
  out.append("abcdefgh", 8);
  EXPECT_EQ(out.finish(), "ab\n[... 3 bytes of output cut here ...]\nfgh");
}

TEST(CappedOutput, TheTailJustFullIsNotCut) {
  CappedOutput out(8);
  out.append("abcd", 4);  // the head
  out.append("ef", 2);
  out.append("gh", 2);  // the tail's last byte: the ring is full and not yet round
  EXPECT_EQ(out.finish(), "abcdefgh");
}

TEST(CappedOutput, ManySmallWritesAcrossTheWrap) {
  for (size_t cap : {2u, 3u, 8u, 16u, 17u, 100u}) {
    std::string all = numbered(1000);
    CappedOutput out(cap);
    size_t at = 0;
    for (size_t k = 1; at < all.size(); k = k % 7 + 1) {
      size_t n = std::min(k, all.size() - at);
      out.append(all.data() + at, n);
      at += n;
    }
    EXPECT_EQ(out.total(), all.size());
    EXPECT_EQ(out.finish(), expected_capped(all, cap)) << "cap " << cap;
  }
}

TEST(CappedOutput, AWriteLongerThanTheTailReplacesIt) {
  std::string all = numbered(200);
  // Starting with the ring at each position in turn.
  for (size_t first = 0; first <= 30; ++first) {
    CappedOutput out(20);
    out.append(all.data(), first);
    out.append(all.data() + first, 150);  // longer than the tail of 10
    out.append(all.data() + first + 150, 3);
    EXPECT_EQ(out.finish(), expected_capped(all.substr(0, first + 153), 20)) << first;
  }
}

TEST(CappedOutput, EveryLengthAroundTheCapAndEveryChunking) {
  const size_t cap = 12;
  for (size_t length = 0; length <= 3 * cap; ++length) {
    for (size_t chunk = 1; chunk <= cap + 2; ++chunk) {
      std::string all = numbered(length);
      CappedOutput out(cap);
      for (size_t at = 0; at < length; at += chunk)
        out.append(all.data() + at, std::min(chunk, length - at));
      ASSERT_EQ(out.finish(), expected_capped(all, cap)) << length << " by " << chunk;
    }
  }
}

TEST(CappedOutput, ACapOfZeroKeepsOnlyTheNote) {
  CappedOutput out(0);
  out.append("abc", 3);
  EXPECT_EQ(out.finish(), "\n[... 3 bytes of output cut here ...]\n");
  CappedOutput none(0);
  EXPECT_EQ(none.finish(), "");
}

TEST(CappedOutput, ALargeOutputKeepsTheCapAndCountsTheRest) {
  const size_t cap = 4u << 20;
  CappedOutput out(cap);
  std::string chunk(65536, 'x');
  for (int i = 0; i < 800; ++i) {  // 50 MiB
    chunk[0] = static_cast<char>('a' + i % 26);
    out.append(chunk.data(), chunk.size());
  }
  std::string kept = out.finish();
  uint64_t total = 800ull * 65536;
  std::string note = "\n[... " + std::to_string(total - cap) + " bytes of output cut here ...]\n";
  ASSERT_EQ(kept.size(), cap + note.size());
  EXPECT_EQ(kept.substr(cap / 2, note.size()), note);
  // The tail is the last 32 chunks, the first of them starting with the letter of 768.
  EXPECT_EQ(kept[cap / 2 + note.size()], static_cast<char>('a' + 768 % 26));
  EXPECT_EQ(kept[kept.size() - 65536], static_cast<char>('a' + 799 % 26));
}

}  // namespace
}  // namespace ci
