// The dispatcher's parts on a store that fails or holds a write back on demand, and on
// a fake clock: an answer waits for its write, a failed write loses nothing, offers go
// out only once written, and the heartbeat drops a silent runner after its K-th round.
#include "dispatcher/dispatcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

#include "ci/clock.h"
#include "ci/mutex.h"
#include "ci/net.h"
#include "ci/replies.h"
#include "dispatcher/group_committer.h"
#include "dispatcher/heartbeat.h"
#include "dispatcher/offer_sender.h"
#include "dispatcher/request_handler.h"
#include "dispatcher/runner_link.h"
#include "raw_peer.h"
#include "test_support.h"

namespace ci {
namespace {

using namespace std::chrono_literals;

// What a MemoryStore holds; shared so that it outlives a dispatcher that owns the store.
struct MemoryStoreData {
  Mutex mutex;
  CondVar changed;
  std::map<JobId, Job> jobs GUARDED_BY(mutex);
  std::set<std::string> runners GUARDED_BY(mutex);
  size_t writes_begun GUARDED_BY(mutex) = 0;
  size_t writes_done GUARDED_BY(mutex) = 0;
  int failures_left GUARDED_BY(mutex) = 0;  // the next writes that fail
  bool held GUARDED_BY(mutex) = false;      // writes wait until released
};

class MemoryStore : public Store {
 public:
  explicit MemoryStore(std::shared_ptr<MemoryStoreData> data) : data_(std::move(data)) {}

  Result<StoredState> load() override {
    MutexLock lock(data_->mutex);
    StoredState state;
    for (const auto& [id, job] : data_->jobs) state.jobs.push_back(job);
    state.runners.assign(data_->runners.begin(), data_->runners.end());
    return state;
  }

  Result<void> save(const std::vector<const Job*>& jobs,
                    const std::vector<std::string>& runners_added,
                    const std::vector<std::string>& runners_removed) override {
    MutexLock lock(data_->mutex);
    ++data_->writes_begun;
    data_->changed.notify_all();
    while (data_->held) data_->changed.wait(lock);
    ++data_->writes_done;
    data_->changed.notify_all();
    if (data_->failures_left > 0) {
      --data_->failures_left;
      return make_error("disk full");
    }
    for (const Job* job : jobs) data_->jobs[job->id] = *job;
    for (const auto& r : runners_added) data_->runners.insert(r);
    for (const auto& r : runners_removed) data_->runners.erase(r);
    return {};
  }

 private:
  std::shared_ptr<MemoryStoreData> data_;
};

// Answers a dispatcher's calls as a runner would, counting the runtests it took.
class FakeRunner {
 public:
  FakeRunner()
      : server_([this](test::RawSocket& socket) {
          while (auto line = socket.read_line(10s)) {
            if (line->rfind("runtest ", 0) == 0) {
              ++runtests_;
              socket.send("OK\n");
            } else {
              socket.send("pong idle\n");
            }
          }
        }) {}
  std::string address() const { return server_.address(); }
  uint16_t port() const { return server_.port(); }
  size_t runtests() const { return runtests_.load(); }

 private:
  std::atomic<size_t> runtests_{0};
  test::RawServer server_;  // last: its threads use the member above
};

std::string commit_id(char c) { return std::string(40, c); }

// The parts of a dispatcher without its network side: requests go straight to the
// handler, and its answers are kept.
class DispatcherParts : public ::testing::Test {
 protected:
  DispatcherParts()
      : store_(data_),
        writer_(dir_ / "test_results"),
        committer_(state_, store_, writer_, clock_),
        offers_(state_, committer_, link_, clock_),
        heartbeat_(state_, committer_, offers_, ping_link_, clock_, kInterval),
        handler_(state_, committer_, offers_, writer_, clock_) {
    EXPECT_TRUE(writer_.prepare().ok());
    committer_.start();
    offers_.start(1);
    heartbeat_.start();
  }

  static constexpr std::chrono::milliseconds kInterval{1000};

  // Moves the clock to the next heartbeat round and waits until the round is over (the
  // heartbeat thread asleep again, until the round after).
  void heartbeat_round() {
    ASSERT_TRUE(test::wait_until([&] { return clock_.waiting_until(clock_.now() + kInterval); }));
    clock_.advance(kInterval);
    ASSERT_TRUE(test::wait_until([&] { return clock_.waiting_until(clock_.now() + kInterval); }));
  }

  // Sends `request`; the answer, when it comes, is kept in answers_ under its number.
  size_t send(Request request) {
    size_t n = sent_++;
    handler_.handle(std::move(request), [this, n](const Reply& reply) {
      MutexLock lock(mutex_);
      answers_[n] = reply;
    });
    return n;
  }
  std::optional<Reply> answer(size_t n) {
    MutexLock lock(mutex_);
    auto it = answers_.find(n);
    if (it == answers_.end()) return std::nullopt;
    return it->second;
  }
  Reply wait_answer(size_t n) {
    EXPECT_TRUE(test::wait_until([&] { return answer(n).has_value(); })) << "no answer";
    return answer(n).value_or(Reply::err("no answer"));
  }
  size_t stored_jobs() {
    MutexLock lock(data_->mutex);
    return data_->jobs.size();
  }

  FakeRunner runner_;  // first: destroyed last, once the links have closed their connections
  test::TempDir dir_;
  FakeClock clock_;
  std::shared_ptr<MemoryStoreData> data_ = std::make_shared<MemoryStoreData>();
  MemoryStore store_;
  ResultWriter writer_;
  GuardedScheduler state_{Scheduler::Options{3, 3}};
  RunnerLink link_{RunnerLink::Options{}};
  RunnerLink ping_link_{RunnerLink::Options{}};
  GroupCommitter committer_;
  OfferSender offers_;
  Heartbeat heartbeat_;
  RequestHandler handler_;
  Mutex mutex_;
  std::map<size_t, Reply> answers_ GUARDED_BY(mutex_);
  size_t sent_ = 0;
};

TEST_F(DispatcherParts, NoOkBeforeTheChangeIsDurable) {
  {
    MutexLock lock(data_->mutex);
    data_->held = true;
  }
  size_t n = send(DispatchRequest{commit_id('a'), "master"});
  {
    MutexLock lock(data_->mutex);
    data_->changed.wait(lock, [&]() REQUIRES(data_->mutex) { return data_->writes_begun > 0; });
    // The write has begun and cannot end: the peer must not have heard anything.
    EXPECT_FALSE(answer(n).has_value());
    data_->held = false;
    data_->changed.notify_all();
  }
  Reply reply = wait_answer(n);
  EXPECT_EQ(reply.kind, Reply::Kind::Ok);
  EXPECT_EQ(reply.args, std::vector<std::string>{"1"});
  EXPECT_EQ(stored_jobs(), 1u);
}

TEST_F(DispatcherParts, AFailedWriteAnswersErrAndLosesNothing) {
  {
    MutexLock lock(data_->mutex);
    data_->failures_left = 1;
  }
  Reply failed = wait_answer(send(DispatchRequest{commit_id('a'), "master"}));
  ASSERT_EQ(failed.kind, Reply::Kind::Err);
  EXPECT_EQ(failed.reason(), "cannot store the change: disk full");
  EXPECT_EQ(stored_jobs(), 0u);

  // The next change writes the one that failed with it: nothing is lost.
  Reply next = wait_answer(send(DispatchRequest{commit_id('b'), "master"}));
  ASSERT_EQ(next.kind, Reply::Kind::Ok);
  EXPECT_EQ(stored_jobs(), 2u);
  // And the observer, which heard ERR, sends its commit again: the same job, not a new one.
  Reply again = wait_answer(send(DispatchRequest{commit_id('a'), "master"}));
  ASSERT_EQ(again.kind, Reply::Kind::Ok);
  EXPECT_EQ(again.args, std::vector<std::string>{"1"});
  EXPECT_EQ(stored_jobs(), 2u);
}

TEST_F(DispatcherParts, AFailedResultWriteAnswersErrAndTheResendIsRecordedOnce) {
  FakeRunner& runner = runner_;
  ASSERT_EQ(wait_answer(send(RegisterRequest{"127.0.0.1", runner.port()})).kind, Reply::Kind::Ok);
  ASSERT_EQ(wait_answer(send(DispatchRequest{commit_id('c'), "master"})).kind, Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return runner.runtests() == 1; }));
  {
    MutexLock lock(data_->mutex);
    data_->failures_left = 1;
  }
  ResultsRequest result{1, 1, runner.address(), TestStatus::Passed, 2, 0, 15, "ok\n"};
  Reply failed = wait_answer(send(result));
  ASSERT_EQ(failed.kind, Reply::Kind::Err);
  // The runner keeps its result until it hears OK, and sends it again.
  Reply resent = wait_answer(send(result));
  ASSERT_EQ(resent.kind, Reply::Kind::Ok);
  MutexLock lock(data_->mutex);
  ASSERT_EQ(data_->jobs.count(1), 1u);
  EXPECT_EQ(data_->jobs[1].state, JobState::Finished);
  EXPECT_EQ(data_->jobs[1].outcome->status, TestStatus::Passed);
  EXPECT_TRUE(test::file_exists(writer_.path_for(commit_id('c'))));
}

TEST_F(DispatcherParts, AnOfferWhoseWriteFailedIsNeverSentAndGoesOutOnceWritten) {
  FakeRunner& runner = runner_;
  ASSERT_EQ(wait_answer(send(RegisterRequest{"127.0.0.1", runner.port()})).kind, Reply::Kind::Ok);
  {
    MutexLock lock(data_->mutex);
    data_->failures_left = 1;
  }
  // The dispatch and its offer share the failing write: the runner never hears of an
  // attempt the store does not hold.
  ASSERT_EQ(wait_answer(send(DispatchRequest{commit_id('d'), "master"})).kind, Reply::Kind::Err);
  EXPECT_EQ(runner.runtests(), 0u);
  {
    MutexLock lock(state_.mutex);
    EXPECT_EQ(state_.scheduler.job(1)->state, JobState::Queued);
  }
  // The runner is asked again at the next heartbeat round; then the job goes to it,
  // once written, as its first attempt.
  heartbeat_round();
  ASSERT_TRUE(test::wait_until([&] { return runner.runtests() == 1; }));
  MutexLock lock(data_->mutex);
  EXPECT_EQ(data_->jobs[1].attempt, 1u);
  EXPECT_EQ(data_->jobs[1].runners, std::vector<std::string>{runner.address()});
}

TEST_F(DispatcherParts, DropsASilentRunnerAtItsThirdMissedRoundAndNotBefore) {
  // A runner address where nothing listens: every ping fails at once.
  uint16_t silent = 0;
  {
    test::RawServer gone([](test::RawSocket&) {});
    silent = gone.port();
  }
  const std::string address = "127.0.0.1:" + std::to_string(silent);
  ASSERT_EQ(wait_answer(send(RegisterRequest{"127.0.0.1", silent})).kind, Reply::Kind::Ok);
  // Missed pings so far; -1 once dropped.
  auto misses = [&]() -> int {
    MutexLock lock(state_.mutex);
    auto it = state_.scheduler.runners().find(address);
    return it == state_.scheduler.runners().end() ? -1 : it->second.misses;
  };
  EXPECT_EQ(misses(), 0);
  heartbeat_round();
  EXPECT_EQ(misses(), 1);
  heartbeat_round();
  EXPECT_EQ(misses(), 2);
  heartbeat_round();
  EXPECT_EQ(misses(), -1);
  // The drop is a change no one waits for: written once the lazy delay has passed.
  clock_.advance(GroupCommitter::kLazyWriteDelay);
  ASSERT_TRUE(test::wait_until([&] {
    MutexLock lock(data_->mutex);
    return data_->runners.empty();
  }));
}

// The whole dispatcher, over loopback, on the fake clock.
TEST(DispatcherOnAFakeClock, AnswersOverTheNetworkAndDropsASilentRunner) {
  test::TempDir dir;
  FakeClock clock;
  auto data = std::make_shared<MemoryStoreData>();
  DispatcherOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.results_dir = dir / "test_results";
  options.heartbeat_interval = 1000ms;
  options.heartbeat_misses = 3;
  Dispatcher dispatcher(options, std::make_unique<MemoryStore>(data), clock);
  ASSERT_TRUE(dispatcher.start().ok());

  LineClient client("127.0.0.1", dispatcher.port());
  // A runner address where nothing listens: every ping fails at once.
  uint16_t silent = 0;
  {
    test::RawServer gone([](test::RawSocket&) {});
    silent = gone.port();
  }
  auto registered = client.call(RegisterRequest{"127.0.0.1", silent});
  ASSERT_TRUE(registered && registered->kind == Reply::Kind::Ok);
  const std::string address = "127.0.0.1:" + std::to_string(silent);
  // The runner's state as `runners` tells it; "gone" once it is not listed.
  auto runner_state = [&]() -> std::string {
    auto reply = client.call(RunnersRequest{});
    if (!reply) return reply.error();
    auto runners = parse_runners_reply(*reply);
    if (!runners) return runners.error();
    for (const auto& row : runners->runners)
      if (row.address == address) return row.state;
    return "gone";
  };

  // The dispatch is answered once written; the runner that cannot be reached keeps
  // it queued; the heartbeat drops it on the fake clock, and the store forgets it.
  auto dispatched = client.call(DispatchRequest{commit_id('e'), "master"});
  ASSERT_TRUE(dispatched && dispatched->kind == Reply::Kind::Ok);
  // The runtest could not reach it: it is suspect, and pinged at every round.
  ASSERT_TRUE(test::wait_until([&] { return runner_state() == "unreachable"; }));
  for (int round = 1; round <= 2; ++round) {
    ASSERT_TRUE(test::wait_until([&] { return clock.waiting_until(clock.now() + 1000ms); }));
    clock.advance(1000ms);
  }
  ASSERT_TRUE(test::wait_until([&] { return runner_state() == "gone"; }));
  ASSERT_TRUE(test::wait_until([&] {
    clock.advance(GroupCommitter::kLazyWriteDelay);
    MutexLock lock(data->mutex);
    return data->runners.empty() && data->jobs.size() == 1 &&
           data->jobs.begin()->second.state == JobState::Queued;
  }));
  dispatcher.stop();
}

}  // namespace
}  // namespace ci
