// The real ci-reporter killed with SIGKILL again and again while it follows a feed and
// runs a notification command: once it has caught up, every event is in the read model
// and every notification was made; none twice but for a delivery a kill interrupted
// after the command ran and before its outbox row went.
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>
#include <sstream>

#include "ci/sqlite.h"
#include "fake_feed.h"
#include "http_peer.h"
#include "test_support.h"

namespace ci::reporter::test_peer {
namespace {

int64_t count(const std::string& db_path, const std::string& query) {
  auto db = sql::Database::open(db_path);
  if (!db) return -1;
  auto s = db->prepare(query);
  if (!s) return -1;
  auto row = s->step();
  return row.ok() && *row ? s->column_int(0) : -1;
}

TEST(ReporterCrashTest, KilledAtAnyMomentItResumesWhereItStopped) {
  ASSERT_TRUE(test::file_exists(test::bin("ci-reporter"))) << "ci-reporter is not built";
  test::TempDir dir;
  FakeFeed feed;
  feed.start();
  std::string db = dir / "reporter.db", ids = dir / "ids";
  std::vector<std::string> args = {"--dispatcher-server",
                                   "127.0.0.1:" + std::to_string(feed.port()),
                                   "--db",
                                   db,
                                   "--http",
                                   "127.0.0.1:0",
                                   "--poll-wait",
                                   "0.2",
                                   "--notify-command",
                                   "echo \"$CI_DELIVERY_ID\" >> '" + ids + "'"};

  std::set<std::string> expected;
  std::string branch_state;
  JobId next = 1;
  const int kRounds = 5, kJobsPerRound = 30;
  for (int round = 0; round <= kRounds; ++round) {
    test::Daemon reporter("ci-reporter", args, dir / ("log" + std::to_string(round)));
    uint16_t port = reporter.wait_listening();
    ASSERT_NE(port, 0) << reporter.log();
    if (round == kRounds) {
      // The last one runs until it has caught up and delivered everything.
      ASSERT_TRUE(test::wait_until([&] {
        return count(db, "SELECT value FROM meta WHERE key = 'last_seq'") ==
                   static_cast<int64_t>(next - 1) &&
               count(db, "SELECT COUNT(*) FROM outbox") == 0;
      })) << reporter.log();
      break;
    }
    JobId first = next;
    for (int i = 0; i < kJobsPerRound; ++i, ++next) {
      // Runs of passes and failures, so that the branch changes state now and then.
      bool passed = (next / 3) % 2 == 0;
      JobInfo job = make_job(next, "c" + std::to_string(next), "master", "finished");
      job.status = passed ? TestStatus::Passed : TestStatus::Failed;
      job.attempt = 1;
      uint64_t seq = feed.add(
          finished(job, {test_case("t.a", passed ? CaseOutcome::Passed : CaseOutcome::Failed)}));
      expected.insert(std::to_string(seq) + ".job.finished");
      std::string state = passed ? "passing" : "failing";
      if (!branch_state.empty() && branch_state != state)
        expected.insert(std::to_string(seq) + ".branch." + state);
      branch_state = state;
    }
    // Killed as soon as it has applied something of this round: mid-way, most times.
    ASSERT_TRUE(test::wait_until([&] {
      return count(db, "SELECT COUNT(*) FROM jobs WHERE id >= " + std::to_string(first)) > 0;
    }));
    reporter.kill(SIGKILL);
  }

  EXPECT_EQ(count(db, "SELECT COUNT(*) FROM jobs"), static_cast<int64_t>(next - 1));
  EXPECT_EQ(count(db, "SELECT COUNT(*) FROM cases"), static_cast<int64_t>(next - 1));
  std::map<std::string, int> made;
  std::istringstream lines(test::read_text(ids));
  for (std::string line; std::getline(lines, line);) ++made[line];
  std::set<std::string> distinct;
  int repeats = 0;
  for (const auto& [id, n] : made) {
    distinct.insert(id);
    repeats += n - 1;
  }
  EXPECT_EQ(distinct, expected);
  EXPECT_LE(repeats, kRounds);  // at most the one delivery each kill interrupted
}

}  // namespace
}  // namespace ci::reporter::test_peer
