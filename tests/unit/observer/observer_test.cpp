#include "observer/observer.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ci/files.h"
#include "fake_dispatcher.h"
#include "log_capture.h"
#include "test_support.h"

namespace ci::observer {
namespace {

using namespace std::chrono_literals;
using ci::test::commit_file;
using ci::test::git;
using ci::test::wait_until;

using ci::test::LogCapture;

class ObserverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    master_ = tmp_ / "master";
    base_ = ci::test::make_master_repo(master_);
    clone_ = ci::test::clone_repo(master_, tmp_ / "clone");
    ASSERT_TRUE(dispatcher_.start());
  }

  // A long interval by default: tests drive rounds with poll_now().
  ObserverOptions options(std::chrono::milliseconds interval = 1h) {
    ObserverOptions o;
    o.repo = clone_;
    o.dispatcher = {"127.0.0.1", dispatcher_.port()};
    o.interval = interval;
    o.client.connect_timeout = 2000ms;
    o.client.io_timeout = 5000ms;
    return o;
  }

  std::unique_ptr<Observer> start(ObserverOptions o) {
    auto observer = std::make_unique<Observer>(std::move(o));
    auto r = observer->start();
    EXPECT_TRUE(r.ok()) << r.error();
    // The first round is the first look: what comes after it is new.
    EXPECT_TRUE(wait_until([&] { return observer->rounds_completed() >= 1; }));
    return observer;
  }

  // Returns once a whole round has run that started after this call.
  static void full_round(Observer& observer) {
    for (int i = 0; i < 2; ++i) {
      uint64_t before = observer.rounds_completed();
      observer.poll_now();
      ASSERT_TRUE(wait_until([&] { return observer.rounds_completed() > before; }));
    }
  }

  ci::test::TempDir tmp_;
  std::string master_;
  std::string base_;
  std::string clone_;
  test::FakeDispatcher dispatcher_;
};

TEST_F(ObserverTest, CommitsInTheMasterAreDispatchedInOrderOnce) {
  auto observer = start(options(100ms));
  std::string c1 = commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "a.txt", "2");
  std::string c3 = commit_file(master_, "a.txt", "3");

  ASSERT_TRUE(wait_until([&] { return dispatcher_.dispatches().size() >= 3; }));
  uint64_t rounds = observer->rounds_completed();
  ASSERT_TRUE(wait_until([&] { return observer->rounds_completed() >= rounds + 3; }));
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1, c2, c3}));
  for (const auto& d : dispatcher_.dispatches()) EXPECT_EQ(d.branch, "master");
  EXPECT_EQ(observer->handed_over().at("master"), c3);
  EXPECT_EQ(ci::test::read_text(clone_ + "/.git/ci-observer.state"), "master " + c3 + "\n");
}

TEST_F(ObserverTest, FirstLookDispatchesNothing) {
  commit_file(master_, "a.txt", "before the observer");
  auto observer = start(options());
  full_round(*observer);
  EXPECT_TRUE(dispatcher_.dispatches().empty());
  EXPECT_EQ(observer->handed_over().at("master"), ci::test::head_commit(master_));
  EXPECT_EQ(observer->state_file(), clone_ + "/.git/ci-observer.state");
  EXPECT_TRUE(ci::test::file_exists(observer->state_file()));
}

TEST_F(ObserverTest, PollNowRunsARoundAtOnce) {
  auto observer = start(options(1h));
  std::string c1 = commit_file(master_, "a.txt", "1");
  observer->poll_now();
  ASSERT_TRUE(wait_until([&] { return dispatcher_.dispatches().size() == 1; }));
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1}));
}

TEST_F(ObserverTest, CommitsPileUpWhileTheDispatcherIsDownAndGoOnceItIsBack) {
  uint16_t port = dispatcher_.port();
  dispatcher_.stop();
  auto observer = start(options(50ms));
  std::string c1 = commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "a.txt", "2");
  uint64_t rounds = observer->rounds_completed();
  ASSERT_TRUE(wait_until([&] { return observer->rounds_completed() >= rounds + 3; }));
  EXPECT_EQ(observer->handed_over().at("master"), base_);
  std::string c3 = commit_file(master_, "a.txt", "3");

  test::FakeDispatcher back;
  ASSERT_TRUE(back.start(port));
  ASSERT_TRUE(wait_until([&] { return back.dispatches().size() >= 3; }));
  full_round(*observer);
  EXPECT_EQ(back.commits(), (std::vector<std::string>{c1, c2, c3}));
  EXPECT_EQ(observer->handed_over().at("master"), c3);
}

TEST_F(ObserverTest, NothingIsDispatchedWhileStatusIsNotOk) {
  dispatcher_.set_not_ready(true);
  auto observer = start(options());
  std::string c1 = commit_file(master_, "a.txt", "1");
  full_round(*observer);
  full_round(*observer);
  EXPECT_GE(dispatcher_.status_calls(), 2u);
  EXPECT_TRUE(dispatcher_.dispatches().empty());

  dispatcher_.set_not_ready(false);
  full_round(*observer);
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1}));
}

// The commits planned while the dispatcher is not ready wait: later rounds do not walk
// the history again for them, only for what is new.
TEST_F(ObserverTest, ADispatcherOutageDoesNotPlanTheSameCommitsAgain) {
  dispatcher_.set_not_ready(true);
  auto observer = start(options());
  std::string c1 = commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "a.txt", "2");
  full_round(*observer);
  uint64_t read = observer->commits_read();
  EXPECT_GT(read, 0u);
  full_round(*observer);
  full_round(*observer);
  EXPECT_EQ(observer->commits_read(), read);
  EXPECT_TRUE(dispatcher_.dispatches().empty());

  std::string c3 = commit_file(master_, "a.txt", "3");
  full_round(*observer);
  EXPECT_GT(observer->commits_read(), read);
  EXPECT_LE(observer->commits_read(), read + 10);
  dispatcher_.set_not_ready(false);
  full_round(*observer);
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1, c2, c3}));
  EXPECT_EQ(observer->handed_over().at("master"), c3);
}

TEST_F(ObserverTest, ABranchOverTheCapHandsOverItsNewestCommitsAndLogsTheRest) {
  LogCapture log;
  auto o = options();
  o.max_new_commits = 3;
  auto observer = start(o);
  std::vector<std::string> made;
  for (int i = 0; i < 5; ++i) made.push_back(commit_file(master_, "a.txt", std::to_string(i)));
  full_round(*observer);
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{made[2], made[3], made[4]}));
  EXPECT_TRUE(log.contains("branch 'master' has more new commits than --max-new-commits 3"));
  EXPECT_TRUE(log.contains("skipping the 2 older ones, " + made[0] + " (oldest) to " + made[1] +
                           " (newest)"));
  full_round(*observer);
  EXPECT_EQ(dispatcher_.commits().size(), 3u);
}

TEST_F(ObserverTest, BranchOptionLimitsWhatIsWatched) {
  auto o = options();
  o.branches = {"master"};
  auto observer = start(o);
  git(master_, {"checkout", "-q", "-b", "feature"});
  commit_file(master_, "f.txt", "1");
  git(master_, {"checkout", "-q", "master"});
  std::string m1 = commit_file(master_, "m.txt", "1");

  full_round(*observer);
  full_round(*observer);
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{m1}));
  EXPECT_EQ(observer->handed_over().count("feature"), 0u);
}

TEST_F(ObserverTest, NewBranchIsDispatchedWithItsOwnCommitsOnly) {
  auto observer = start(options());
  git(master_, {"checkout", "-q", "-b", "feature"});
  std::string f1 = commit_file(master_, "f.txt", "1");
  std::string f2 = commit_file(master_, "f.txt", "2");
  full_round(*observer);
  ASSERT_EQ(dispatcher_.dispatches().size(), 2u);
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{f1, f2}));
  EXPECT_EQ(dispatcher_.dispatches()[0].branch, "feature");
}

TEST_F(ObserverTest, LatestOnlyDispatchesTheNewestCommit) {
  auto o = options();
  o.mode = DispatchMode::LatestOnly;
  auto observer = start(o);
  commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "a.txt", "2");
  full_round(*observer);
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c2}));
}

TEST_F(ObserverTest, RestartDispatchesExactlyTheCommitsMadeWhileDown) {
  std::string c1;
  {
    auto observer = start(options());
    c1 = commit_file(master_, "a.txt", "1");
    full_round(*observer);
    observer->stop();
  }
  std::string c2 = commit_file(master_, "a.txt", "2");
  std::string c3 = commit_file(master_, "a.txt", "3");
  auto observer = start(options());
  ASSERT_TRUE(wait_until([&] { return dispatcher_.dispatches().size() >= 3; }));
  full_round(*observer);
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1, c2, c3}));
}

TEST_F(ObserverTest, RepositoryWithoutOriginIsReadWithoutFetching) {
  auto o = options();
  o.repo = master_;
  o.state_file = tmp_ / "state/observer.state";
  auto observer = start(o);
  EXPECT_FALSE(observer->fetches());
  std::string c1 = commit_file(master_, "a.txt", "1");
  full_round(*observer);
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1}));
  EXPECT_EQ(ci::test::read_text(tmp_ / "state/observer.state"), "master " + c1 + "\n");
}

// The clone reads the master's objects in place: a round fetches refs, not packs.
TEST_F(ObserverTest, ANewCommitIsFetchedWithoutCopyingTheMastersObjects) {
  auto packs = [&] { return ci::test::list_dir(clone_ + "/.git/objects/pack"); };
  auto before = packs();
  auto observer = start(options());
  std::string c1 = commit_file(master_, "a.txt", "1");
  std::string c2 = commit_file(master_, "b.txt", "2");
  full_round(*observer);
  EXPECT_EQ(dispatcher_.commits(), (std::vector<std::string>{c1, c2}));
  EXPECT_EQ(packs(), before);
  EXPECT_EQ(ci::test::read_text(clone_ + "/.git/objects/info/alternates"),
            std::filesystem::canonical(master_ + "/.git/objects").string() + "\n");
}

// Stopped while the dispatcher is slow to answer, in the middle of a round: the
// state records exactly what the dispatcher accepted, and the next start hands over
// the rest, nothing twice.
TEST_F(ObserverTest, StopInTheMiddleOfARoundKeepsWhatWasHandedOver) {
  auto observer = start(options());
  std::vector<std::string> made;
  for (int i = 0; i < 4; ++i) made.push_back(commit_file(master_, "a.txt", std::to_string(i)));
  dispatcher_.hold_dispatch(3);
  observer->poll_now();
  ASSERT_TRUE(wait_until([&] { return dispatcher_.holding(); }));
  std::thread stopper([&] { observer->stop(); });
  dispatcher_.release_held(true);
  stopper.join();
  auto accepted = dispatcher_.commits();
  ASSERT_GE(accepted.size(), 3u);
  EXPECT_EQ(observer->handed_over().at("master"), accepted.back());
  EXPECT_EQ(ci::test::read_text(clone_ + "/.git/ci-observer.state"),
            "master " + accepted.back() + "\n");

  auto again = start(options());
  full_round(*again);
  EXPECT_EQ(dispatcher_.commits(), made);
}

// A crash in the middle of a round leaves the state file as the round found it,
// while the dispatcher already has some of the round's commits. After a restart
// those are handed over again and answered with their jobs: every commit made is
// one job, none is missed.
TEST_F(ObserverTest, RestartAfterACrashInTheMiddleOfARoundMakesEachCommitOneJob) {
  auto observer = start(options());
  std::vector<std::string> made;
  for (int i = 0; i < 4; ++i) made.push_back(commit_file(master_, "a.txt", std::to_string(i)));
  dispatcher_.hold_dispatch(3);
  observer->poll_now();
  ASSERT_TRUE(wait_until([&] { return dispatcher_.holding(); }));
  EXPECT_EQ(dispatcher_.job_commits(), (std::vector<std::string>{made[0], made[1]}));
  // What a SIGKILL at this moment would leave on disk.
  std::string state_file = clone_ + "/.git/ci-observer.state";
  std::string on_disk = ci::test::read_text(state_file);
  dispatcher_.release_held(false);
  observer->stop();
  ASSERT_TRUE(write_file_atomic(state_file, on_disk).ok());

  auto restarted = start(options());
  full_round(*restarted);
  EXPECT_EQ(dispatcher_.job_commits(), made);
  EXPECT_EQ(restarted->handed_over().at("master"), made.back());
  EXPECT_EQ(ci::test::read_text(state_file), "master " + made.back() + "\n");
}

TEST_F(ObserverTest, StopReturnsWithoutWaitingForTheInterval) {
  auto observer = start(options(1h));
  auto before = std::chrono::steady_clock::now();
  observer->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 5s);
  observer->stop();  // idempotent
}

TEST_F(ObserverTest, StartFailsOnAMissingRepository) {
  auto o = options();
  o.repo = tmp_ / "nowhere";
  Observer observer(o);
  auto r = observer.start();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find(o.repo), std::string::npos) << r.error();
}

TEST_F(ObserverTest, StartFailsOnAFolderThatIsNotARepository) {
  auto o = options();
  o.repo = tmp_ / "plain";
  ASSERT_TRUE(make_dirs(o.repo).ok());
  Observer observer(o);
  auto r = observer.start();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find(o.repo), std::string::npos) << r.error();
}

TEST_F(ObserverTest, StartFailsOnACorruptStateFile) {
  auto o = options();
  o.state_file = tmp_ / "corrupt.state";
  ASSERT_TRUE(write_file_atomic(o.state_file, "not a state file\n").ok());
  Observer observer(o);
  auto r = observer.start();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find(o.state_file), std::string::npos) << r.error();
}

}  // namespace
}  // namespace ci::observer
