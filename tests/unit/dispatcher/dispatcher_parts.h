// The dispatcher's parts for its tests: a store in memory that fails or holds a write
// back on demand, a runner that answers as told, and the parts wired without the
// network, on a fake clock.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>

#include "ci/clock.h"
#include "ci/mutex.h"
#include "ci/net.h"
#include "ci/replies.h"
#include "dispatcher/dispatcher.h"
#include "dispatcher/group_committer.h"
#include "dispatcher/heartbeat.h"
#include "dispatcher/offer_sender.h"
#include "dispatcher/request_handler.h"
#include "dispatcher/runner_link.h"
#include "raw_peer.h"
#include "test_support.h"

namespace ci::test_parts {

using namespace std::chrono_literals;

// What a MemoryStore holds; shared so that it outlives a dispatcher that owns the store.
struct MemoryStoreData {
  Mutex mutex;
  CondVar changed;
  std::map<JobId, Job> jobs GUARDED_BY(mutex);
  std::map<std::string, RunnerSpec> runners GUARDED_BY(mutex);
  std::map<std::string, Repository> repos GUARDED_BY(mutex);
  std::vector<FeedEvent> feed GUARDED_BY(mutex);
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
    for (const auto& [address, spec] : data_->runners) state.runners.push_back({address, spec});
    for (const auto& [name, repo] : data_->repos) state.repos.push_back(repo);
    return state;
  }

  Result<void> save(const std::vector<const Job*>& jobs,
                    const std::vector<StoredRunner>& runners_added,
                    const std::vector<std::string>& runners_removed,
                    const std::vector<FeedEvent>& feed,
                    const std::vector<Repository>& repos) override {
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
    for (const auto& r : runners_added) data_->runners[r.address] = r.spec;
    for (const auto& r : repos) data_->repos[r.name] = r;
    for (const auto& r : runners_removed) data_->runners.erase(r);
    data_->feed.insert(data_->feed.end(), feed.begin(), feed.end());
    return {};
  }

  Result<FeedPage> read_events(uint64_t from, uint64_t max, size_t max_bytes) override {
    MutexLock lock(data_->mutex);
    FeedPage page;
    for (const FeedEvent& e : data_->feed) {
      page.oldest = page.oldest ? std::min(page.oldest, e.seq) : e.seq;
      page.last = std::max(page.last, e.seq);
      if (e.seq > from && page.count < max && (page.body.size() < max_bytes || !page.count)) {
        page.body += serialize_event(e);
        page.count++;
      }
    }
    return page;
  }

  Result<std::vector<TestCase>> read_cases(JobId job, uint32_t attempt) override {
    MutexLock lock(data_->mutex);
    for (const FeedEvent& e : data_->feed)
      if (e.kind == EventKind::JobFinished && e.job.id == job && e.job.attempt == attempt)
        return e.cases;
    return std::vector<TestCase>{};
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
              {
                MutexLock lock(mutex_);
                last_runtest_ = *line;
              }
              ++runtests_;
              socket.send("OK\n");
            } else if (line->rfind("cancel ", 0) == 0) {
              ++cancels_;
              socket.send("OK\n");
            } else {
              socket.send("pong idle\n");
            }
          }
        }) {}
  std::string address() const { return server_.address(); }
  uint16_t port() const { return server_.port(); }
  size_t runtests() const { return runtests_.load(); }
  size_t cancels() const { return cancels_.load(); }
  std::string last_runtest() const {
    MutexLock lock(mutex_);
    return last_runtest_;
  }

 private:
  mutable Mutex mutex_;
  std::string last_runtest_ GUARDED_BY(mutex_);
  std::atomic<size_t> runtests_{0};
  std::atomic<size_t> cancels_{0};
  test::RawServer server_;  // last: its threads use the member above
};

inline std::string commit_id(char c) { return std::string(40, c); }

// The parts of a dispatcher without its network side: requests go straight to the
// handler, and its answers are kept.
class DispatcherParts : public ::testing::Test {
 protected:
  DispatcherParts()
      : store_(data_),
        writer_(dir_ / "test_results"),
        feed_(store_, clock_),
        committer_(state_, store_, writer_, clock_),
        offers_(state_, committer_, link_, clock_),
        heartbeat_(state_, committer_, offers_, ping_link_, clock_, kInterval),
        logs_(LogStore::open({dir_ / "logs"}).value()),
        cancels_(cancel_link_),
        handler_(state_, committer_, offers_, writer_,
                 RequestHandler::Feed{feed_, *logs_, store_, cancels_}, clock_) {
    EXPECT_TRUE(writer_.prepare().ok());
    committer_.on_feed_written(
        [this](std::vector<FeedEvent> events) { feed_.written(std::move(events)); });
    // As the dispatcher wires them.
    committer_.on_attempts_ended([this](const GroupCommitter::Attempts& ended) {
      for (const auto& [job, attempt] : ended) logs_->finish(job, attempt);
    });
    feed_.start(0);
    cancels_.start();
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
  // A job dispatched and running on the fake runner (registered first), as its first
  // attempt.
  JobId running_job(char c) {
    Reply reg = wait_answer(send(RegisterRequest{"127.0.0.1", runner_.port()}));
    EXPECT_EQ(reg.kind, Reply::Kind::Ok) << reg.reason();
    Reply d = wait_answer(send(DispatchRequest{commit_id(c), "main"}));
    EXPECT_EQ(d.kind, Reply::Kind::Ok) << d.reason();
    JobId id = std::stoull(d.args.at(0));
    EXPECT_TRUE(running(id, 1));
    return id;
  }
  // Waits until job `id` runs as its attempt `attempt`.
  bool running(JobId id, uint32_t attempt) {
    return test::wait_until([&] {
      MutexLock lock(state_.mutex);
      const Job* job = state_.scheduler.job(id);
      return job->state == JobState::Running && job->attempt == attempt;
    });
  }
  std::string runner() { return "127.0.0.1:" + std::to_string(runner_.port()); }
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
  // Before the committer: its thread tells the hub of each write until it is stopped.
  FeedHub feed_;
  GroupCommitter committer_;
  OfferSender offers_;
  Heartbeat heartbeat_;
  std::unique_ptr<LogStore> logs_;
  RunnerLink cancel_link_{RunnerLink::Options{}};
  CancelSender cancels_;
  RequestHandler handler_;
  Mutex mutex_;
  std::map<size_t, Reply> answers_ GUARDED_BY(mutex_);
  size_t sent_ = 0;
};

}  // namespace ci::test_parts
