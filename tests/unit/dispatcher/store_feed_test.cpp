// The feed and the test cases in the SQLite store: written with the changes, read back
// from a number on, bounded by the retention, and still there after reopening.
#include <gtest/gtest.h>

#include "dispatcher/sqlite_store.h"
#include "test_support.h"

namespace ci {
namespace {

FeedEvent queued_event(uint64_t seq, JobId job) {
  FeedEvent e;
  e.seq = seq;
  e.time_ms = 1764720000000 + static_cast<int64_t>(seq);
  e.kind = EventKind::JobQueued;
  e.job.id = job;
  e.job.commit = std::string(40, 'a');
  e.job.branch = "main";
  e.job.state = "queued";
  e.job.seq = seq;
  return e;
}

FeedEvent finished_event(uint64_t seq, JobId job, std::vector<TestCase> cases) {
  FeedEvent e = queued_event(seq, job);
  e.kind = EventKind::JobFinished;
  e.job.state = "finished";
  e.job.status = TestStatus::Failed;
  e.job.attempt = 1;
  e.cases = std::move(cases);
  return e;
}

TEST(StoreFeed, EventsAndCasesAreReadBackFromANumberOn) {
  test::TempDir dir;
  const std::vector<TestCase> cases = {{"a.T.test_ok", CaseOutcome::Passed, 1, ""},
                                       {"a.T.test bad: yes", CaseOutcome::Failed, 7, "1 != 2"}};
  {
    auto store = open_sqlite_store(dir / "state.db", SyncMode::Normal);
    ASSERT_TRUE(store.ok()) << store.error();
    ASSERT_TRUE((*store)->save({}, {}, {}, {queued_event(1, 1), queued_event(2, 2)}).ok());
    ASSERT_TRUE((*store)->save({}, {}, {}, {finished_event(3, 1, cases)}).ok());
  }
  auto store = open_sqlite_store(dir / "state.db", SyncMode::Normal);
  ASSERT_TRUE(store.ok()) << store.error();
  auto state = (*store)->load();
  ASSERT_TRUE(state.ok()) << state.error();
  EXPECT_EQ(state->last_seq, 3u);

  auto page = (*store)->read_events(1, 100, 1 << 20);
  ASSERT_TRUE(page.ok()) << page.error();
  EXPECT_EQ(page->oldest, 1u);
  EXPECT_EQ(page->last, 3u);
  auto events = parse_events(page->body);
  ASSERT_TRUE(events.ok()) << events.error();
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0], queued_event(2, 2));
  EXPECT_EQ((*events)[1], finished_event(3, 1, cases));  // the cases are in the line

  auto stored = (*store)->read_cases(1, 1);
  ASSERT_TRUE(stored.ok()) << stored.error();
  EXPECT_EQ(*stored, cases);
  EXPECT_TRUE((*store)->read_cases(1, 2)->empty());

  // At most `max`; and nothing after the last.
  EXPECT_EQ((*store)->read_events(0, 1, 1 << 20)->count, 1u);
  EXPECT_EQ((*store)->read_events(3, 100, 1 << 20)->count, 0u);
}

TEST(StoreFeed, TheRetentionKeepsTheNewestAndSaysWhenAReaderFellBehind) {
  auto store = open_sqlite_store(":memory:", SyncMode::Normal, /*event_retention=*/3);
  ASSERT_TRUE(store.ok()) << store.error();
  for (uint64_t seq = 1; seq <= 10; ++seq)
    ASSERT_TRUE((*store)->save({}, {}, {}, {queued_event(seq, seq)}).ok());
  auto behind = (*store)->read_events(2, 100, 1 << 20);
  ASSERT_TRUE(behind.ok()) << behind.error();
  EXPECT_EQ(behind->oldest, 8u);
  EXPECT_EQ(behind->last, 10u);
  EXPECT_EQ(behind->count, 0u);  // from 2 < oldest - 1: take a snapshot
  auto caught_up = (*store)->read_events(7, 100, 1 << 20);
  EXPECT_EQ(caught_up->count, 3u);
}

TEST(StoreFeed, AByteBoundStillGivesAtLeastOneEvent) {
  auto store = open_sqlite_store(":memory:", SyncMode::Normal);
  ASSERT_TRUE(store.ok()) << store.error();
  ASSERT_TRUE((*store)->save({}, {}, {}, {queued_event(1, 1), queued_event(2, 2)}).ok());
  EXPECT_EQ((*store)->read_events(0, 100, 1)->count, 1u);
}

TEST(StoreFeed, AJobKeepsWhatTheFeedSaysOfIt) {
  auto store = open_sqlite_store(":memory:", SyncMode::Normal);
  ASSERT_TRUE(store.ok()) << store.error();
  Job job;
  job.id = 1;
  job.commit = std::string(40, 'e');
  job.branch = "main";
  job.info = CommitInfo{"Carol", "carol@example.com", "Speed up", 1764000000};
  job.queued_ms = 1764720000000;
  job.started_ms = 1764720000500;
  job.seq = 12;
  ASSERT_TRUE((*store)->save({&job}, {}, {}, {}).ok());
  auto state = (*store)->load();
  ASSERT_TRUE(state.ok()) << state.error();
  ASSERT_EQ(state->jobs.size(), 1u);
  const Job& back = state->jobs[0];
  ASSERT_TRUE(back.info);
  EXPECT_EQ(*back.info, *job.info);
  EXPECT_EQ(back.queued_ms, job.queued_ms);
  EXPECT_EQ(back.started_ms, job.started_ms);
  EXPECT_EQ(back.seq, 12u);
}

}  // namespace
}  // namespace ci
