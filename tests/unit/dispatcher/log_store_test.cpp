#include "dispatcher/log_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace ci {
namespace {

std::unique_ptr<LogStore> open_store(const std::string& dir, uint64_t head = 2u << 20,
                                     uint64_t tail = 2u << 20) {
  auto store = LogStore::open({dir, head, tail});
  EXPECT_TRUE(store.ok()) << store.error();
  return store.ok() ? std::move(store.value()) : nullptr;
}

// Byte i of a test's raw output: not periodic in any chunk or cap size used here.
char byte_at(uint64_t i) { return static_cast<char>((i * 131 + (i >> 9) * 7 + (i >> 17)) & 0xff); }

std::string stream(uint64_t from, uint64_t to) {
  std::string out;
  for (uint64_t i = from; i < to; ++i) out += byte_at(i);
  return out;
}

uint64_t append_ok(LogStore& store, uint64_t offset, std::string_view bytes, JobId job = 1,
                   uint32_t attempt = 1) {
  auto received = store.append(job, attempt, offset, bytes);
  EXPECT_TRUE(received.ok()) << received.error();
  return received.ok() ? *received : 0;
}

LogStore::Chunk read_ok(const LogStore& store, uint64_t offset, uint64_t max = 1 << 20,
                        JobId job = 1, uint32_t attempt = 1) {
  auto chunk = store.read(job, attempt, offset, max);
  EXPECT_TRUE(chunk.ok()) << chunk.error();
  return chunk.ok() ? chunk.value() : LogStore::Chunk{};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

uint64_t disk_use(const std::string& dir) {
  uint64_t sum = 0;
  for (const std::string& name : test::list_dir(dir)) {
    struct stat st {};
    if (::stat((dir + "/" + name).c_str(), &st) == 0) sum += static_cast<uint64_t>(st.st_size);
  }
  return sum;
}

TEST(LogStore, ChunksInOrderReadBackByRange) {
  test::TempDir dir;
  auto store = open_store(dir.path());
  EXPECT_EQ(append_ok(*store, 0, "hello "), 6u);
  EXPECT_EQ(append_ok(*store, 6, "world"), 11u);
  EXPECT_EQ(store->received(1, 1), 11u);
  LogStore::Chunk all = read_ok(*store, 0);
  EXPECT_EQ(all.start, 0u);
  EXPECT_EQ(all.total, 11u);
  EXPECT_FALSE(all.done);
  EXPECT_EQ(all.bytes, "hello world");
  LogStore::Chunk part = read_ok(*store, 3, 4);
  EXPECT_EQ(part.start, 3u);
  EXPECT_EQ(part.bytes, "lo w");
}

TEST(LogStore, ChunkResentAfterRestartIsNotDoubled) {
  test::TempDir dir;
  {
    auto store = open_store(dir.path(), 4, 8);
    append_ok(*store, 0, "abc");
    append_ok(*store, 3, "defgh");  // past the head: into the tail
  }
  auto store = open_store(dir.path(), 4, 8);
  EXPECT_EQ(store->received(1, 1), 8u);
  // The runner did not see the reply and sends the chunk again.
  EXPECT_EQ(append_ok(*store, 3, "defgh"), 8u);
  EXPECT_EQ(append_ok(*store, 8, "ij"), 10u);
  EXPECT_EQ(read_ok(*store, 0).bytes, "abcd");
  LogStore::Chunk tail = read_ok(*store, 4);
  EXPECT_EQ(tail.start, 4u);
  EXPECT_EQ(tail.bytes, "efghij");
}

TEST(LogStore, OverlappingChunkWritesOnlyTheNewPart) {
  test::TempDir dir;
  auto store = open_store(dir.path(), 4, 100);
  EXPECT_EQ(append_ok(*store, 0, "abcd"), 4u);
  EXPECT_EQ(append_ok(*store, 2, "cdefg"), 7u);
  EXPECT_EQ(append_ok(*store, 5, "fgh"), 8u);
  EXPECT_EQ(append_ok(*store, 1, "bc"), 8u);  // all held: nothing written
  EXPECT_EQ(read_ok(*store, 0).bytes, "abcd");
  EXPECT_EQ(read_ok(*store, 4).bytes, "efgh");
}

TEST(LogStore, GapInTheHeadIsOmittedAndClosesTheHead) {
  test::TempDir dir;
  {
    auto store = open_store(dir.path(), 100, 100);
    append_ok(*store, 0, "abc");
    EXPECT_EQ(append_ok(*store, 10, "xyz"), 13u);  // the runner dropped [3, 10)
  }
  auto store = open_store(dir.path(), 100, 100);
  EXPECT_EQ(append_ok(*store, 13, "!"), 14u);
  LogStore::Chunk head = read_ok(*store, 0);
  EXPECT_EQ(head.start, 0u);
  EXPECT_EQ(head.total, 14u);
  EXPECT_EQ(head.bytes, "abc");
  for (uint64_t offset : {3u, 5u, 10u}) {
    LogStore::Chunk tail = read_ok(*store, offset);
    EXPECT_EQ(tail.start, 10u) << offset;
    EXPECT_EQ(tail.bytes, "xyz!") << offset;
  }
  EXPECT_EQ(read_ok(*store, 12).bytes, "z!");
  EXPECT_EQ(test::read_text(dir / "1-1.head"), "abc");  // nothing more went to the head
}

TEST(LogStore, GapInTheTailStartsANewTail) {
  test::TempDir dir;
  auto store = open_store(dir.path(), 4, 8);
  append_ok(*store, 0, stream(0, 20));
  EXPECT_EQ(append_ok(*store, 100, stream(100, 103)), 103u);
  EXPECT_EQ(read_ok(*store, 0).bytes, stream(0, 4));
  LogStore::Chunk tail = read_ok(*store, 4);
  EXPECT_EQ(tail.start, 100u);
  EXPECT_EQ(tail.bytes, stream(100, 103));
}

TEST(LogStore, FiftyMebibytesKeepTheExactHeadAndTailWithinTheirDisk) {
  test::TempDir dir;
  const uint64_t head = 2u << 20, tail = 2u << 20, total = 50u << 20, chunk = 64u << 10;
  auto store = open_store(dir.path(), head, tail);
  uint64_t max_disk = 0;
  for (uint64_t offset = 0; offset < total; offset += chunk) {
    ASSERT_EQ(append_ok(*store, offset, stream(offset, offset + chunk)), offset + chunk);
    max_disk = std::max(max_disk, disk_use(dir.path()));
  }
  // The tail file's header is the only byte on disk past the output kept.
  EXPECT_LE(max_disk, head + 2 * tail + 21);
  std::string head_read;
  for (LogStore::Chunk c; head_read.size() < head; head_read += c.bytes) {
    c = read_ok(*store, head_read.size());
    ASSERT_EQ(c.start, head_read.size());
    ASSERT_FALSE(c.bytes.empty());
  }
  EXPECT_TRUE(head_read == stream(0, head));
  // The middle is omitted: a read there starts at the tail, which holds at least the
  // last tail_bytes.
  LogStore::Chunk first = read_ok(*store, head);
  EXPECT_GE(first.start, total - 2 * tail);
  EXPECT_LE(first.start, total - tail);
  EXPECT_EQ(first.total, total);
  std::string tail_read;
  for (LogStore::Chunk c = first; !c.bytes.empty(); tail_read += c.bytes)
    c = read_ok(*store, first.start + tail_read.size());
  EXPECT_TRUE(tail_read == stream(first.start, total));
}

// A rotation killed after writing its new tail but before renaming it over the old one
// leaves both: the old one is whole and wins; nothing is lost nor doubled.
TEST(LogStore, RotationCutShortRecoversWithoutLossOrDoubling) {
  test::TempDir dir;
  {
    auto store = open_store(dir.path(), 4, 8);
    append_ok(*store, 0, stream(0, 4 + 16));  // a tail of 2 * 8: full, rotated next
  }
  // The new tail as the rotation writes it: the last 8 bytes, from raw offset 12.
  std::string half_done = std::string("00000000000000000012\n") + stream(12, 20);
  write_bytes(dir / "1-1.tail.tmp", half_done);
  write_bytes(dir / "2-1.tail.tmp", "0000");  // another log's, torn mid-header
  write_bytes(dir / "notes.tmp", "not a log's");
  auto store = open_store(dir.path(), 4, 8);
  EXPECT_FALSE(test::file_exists(dir / "1-1.tail.tmp"));
  EXPECT_FALSE(test::file_exists(dir / "2-1.tail.tmp"));
  EXPECT_TRUE(test::file_exists(dir / "notes.tmp"));
  EXPECT_EQ(store->received(1, 1), 20u);
  EXPECT_EQ(store->received(2, 1), 0u);
  EXPECT_EQ(read_ok(*store, 4).bytes, stream(4, 20));
  // The runner resends its last chunk, then goes on: the rotation is done again.
  EXPECT_EQ(append_ok(*store, 16, stream(16, 23)), 23u);
  LogStore::Chunk tail = read_ok(*store, 4);
  EXPECT_EQ(tail.start, 12u);
  EXPECT_EQ(tail.bytes, stream(12, 23));
}

// A write cut short leaves part of a chunk: the size says what is held, and the chunk
// resent from there completes it.
TEST(LogStore, WriteCutShortIsCompletedByTheResentChunk) {
  test::TempDir dir;
  {
    auto store = open_store(dir.path(), 4, 100);
    append_ok(*store, 0, stream(0, 30));
  }
  ASSERT_EQ(::truncate((dir / "1-1.tail").c_str(), 21 + 10), 0);  // raw [4, 14) kept
  auto store = open_store(dir.path(), 4, 100);
  EXPECT_EQ(store->received(1, 1), 14u);
  EXPECT_EQ(append_ok(*store, 0, stream(0, 30)), 30u);
  EXPECT_EQ(read_ok(*store, 4).bytes, stream(4, 30));
}

TEST(LogStore, FinishMarksTheLogDoneAndEndsItsWrites) {
  test::TempDir dir;
  {
    auto store = open_store(dir.path());
    append_ok(*store, 0, "out");
    EXPECT_EQ(store->held(), 1u);
    store->finish(1, 1);
    EXPECT_EQ(store->held(), 0u);
    EXPECT_TRUE(read_ok(*store, 0).done);
    EXPECT_EQ(append_ok(*store, 3, "more"), 3u);
    store->finish(3, 1);  // ended with no output
    LogStore::Chunk empty = read_ok(*store, 0, 10, 3, 1);
    EXPECT_TRUE(empty.done);
    EXPECT_EQ(empty.total, 0u);
  }
  auto store = open_store(dir.path());
  LogStore::Chunk chunk = read_ok(*store, 0);
  EXPECT_TRUE(chunk.done);
  EXPECT_EQ(chunk.bytes, "out");
  EXPECT_EQ(append_ok(*store, 3, "more"), 3u);
  EXPECT_EQ(read_ok(*store, 0).bytes, "out");
  EXPECT_EQ(store->held(), 0u);  // a chunk for a finished log does not bring it back
}

// Chunks sent while the attempt ends (a runner taken for lost that is alive after all):
// none written once finish() has returned, and the log's memory stays let go.
TEST(LogStore, ChunksRacingTheEndOfTheLogWriteNothingAfterItAndHoldNoMemory) {
  test::TempDir dir;
  auto store = open_store(dir.path(), 1000, 3000);
  std::atomic<bool> finished{false};
  std::atomic<uint64_t> final_size{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&] {
      int after = 0;
      for (uint64_t offset = 0; after < 50; offset += 100) {
        bool ended = finished.load();
        uint64_t received = append_ok(*store, offset, stream(offset, offset + 100));
        if (!ended) continue;
        ++after;
        EXPECT_EQ(received, final_size.load());
        EXPECT_EQ(store->held(), 0u);
      }
    });
  }
  ASSERT_TRUE(test::wait_until([&] { return store->received(1, 1) >= 2000; }));
  store->finish(1, 1);
  final_size = store->received(1, 1);
  finished = true;
  for (auto& t : writers) t.join();
  EXPECT_EQ(store->held(), 0u);
  EXPECT_EQ(store->received(1, 1), final_size.load());
  LogStore::Chunk head = read_ok(*store, 0, 1000);
  EXPECT_TRUE(head.done);
  EXPECT_EQ(head.bytes, stream(0, 1000));
  EXPECT_EQ(head.total, final_size.load());
  EXPECT_TRUE(test::file_exists(dir / "1-1.done"));
}

TEST(LogStore, ReadsAtOrPastTheEndAreEmptyWithTheTotal) {
  test::TempDir dir;
  auto store = open_store(dir.path());
  LogStore::Chunk none = read_ok(*store, 7, 10, 9, 2);  // no log yet
  EXPECT_EQ(none.start, 7u);
  EXPECT_EQ(none.total, 0u);
  EXPECT_FALSE(none.done);
  EXPECT_TRUE(none.bytes.empty());
  append_ok(*store, 0, "12345");
  for (uint64_t offset : {5u, 9u}) {
    LogStore::Chunk end = read_ok(*store, offset);
    EXPECT_EQ(end.start, offset);
    EXPECT_EQ(end.total, 5u);
    EXPECT_TRUE(end.bytes.empty());
  }
  EXPECT_TRUE(read_ok(*store, 0, 0).bytes.empty());
}

TEST(LogStore, RefusesJobOrAttemptZeroAndAnEmptyTail) {
  test::TempDir dir;
  auto store = open_store(dir.path());
  EXPECT_FALSE(store->append(0, 1, 0, "x").ok());
  EXPECT_FALSE(store->append(1, 0, 0, "x").ok());
  EXPECT_FALSE(store->read(0, 1, 0, 10).ok());
  EXPECT_FALSE(store->read(1, 0, 0, 10).ok());
  EXPECT_FALSE(store->append(1, 1, UINT64_MAX, "xy").ok());
  EXPECT_TRUE(test::list_dir(dir.path()).empty());
  EXPECT_FALSE(LogStore::open({dir / "other", 10, 0}).ok());
}

TEST(LogStore, RemoveTakesEveryAttemptOfTheJobOnly) {
  test::TempDir dir;
  auto store = open_store(dir.path(), 2, 4);
  for (JobId job : {7u, 17u, 70u}) {
    append_ok(*store, 0, "abcdef", job, 1);
    append_ok(*store, 0, "abc", job, 2);
  }
  store->finish(7, 1);
  ASSERT_TRUE(store->remove(7).ok());
  EXPECT_EQ(store->received(7, 1), 0u);
  EXPECT_EQ(store->received(7, 2), 0u);
  EXPECT_FALSE(read_ok(*store, 0, 10, 7, 1).done);
  EXPECT_EQ(test::list_dir(dir.path()),
            (std::vector<std::string>{"17-1.head", "17-1.tail", "17-2.head", "17-2.tail",
                                      "70-1.head", "70-1.tail", "70-2.head", "70-2.tail"}));
}

TEST(LogStore, LogsWrittenAndReadFromManyThreadsAtOnce) {
  test::TempDir dir;
  auto store = open_store(dir.path(), 1000, 3000);
  const uint64_t total = 64000, chunk = 700;
  std::vector<std::thread> threads;
  for (uint32_t attempt = 1; attempt <= 4; ++attempt) {
    threads.emplace_back([&, attempt] {
      for (uint64_t offset = 0; offset < total; offset += chunk)
        append_ok(*store, offset, stream(offset, std::min(offset + chunk, total)), 1, attempt);
      store->finish(1, attempt);
    });
  }
  threads.emplace_back([&] {
    // Whatever is read while the logs are written is what was sent at that offset.
    for (bool all_done = false; !all_done;) {
      all_done = true;
      for (uint32_t attempt = 1; attempt <= 4; ++attempt) {
        for (uint64_t offset : {0u, 990u, 2000u}) {
          LogStore::Chunk c = read_ok(*store, offset, 5000, 1, attempt);
          if (!c.bytes.empty()) {
            EXPECT_LE(c.start + c.bytes.size(), c.total);
          }
          EXPECT_TRUE(c.bytes == stream(c.start, c.start + c.bytes.size()));
          all_done = all_done && c.done;
        }
      }
    }
  });
  for (auto& t : threads) t.join();
  for (uint32_t attempt = 1; attempt <= 4; ++attempt) {
    EXPECT_EQ(read_ok(*store, 0, 5000, 1, attempt).bytes, stream(0, 1000));
    LogStore::Chunk tail = read_ok(*store, 1000, 10000, 1, attempt);
    EXPECT_LE(tail.start, total - 3000);
    EXPECT_TRUE(tail.bytes == stream(tail.start, total));
  }
}

}  // namespace
}  // namespace ci
