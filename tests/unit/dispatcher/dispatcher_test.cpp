// The dispatcher's parts on a store that fails or holds a write back on demand, and on
// a fake clock: an answer waits for its write, a failed write loses nothing, offers go
// out only once written, and the heartbeat drops a silent runner after its K-th round.
#include "dispatcher_parts.h"

namespace ci {
namespace {

using namespace test_parts;
using namespace std::chrono_literals;

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

namespace ci {
namespace {

// Repositories through the verbs: announced durably, listed with their counts, a job
// of an unknown one refused, a labelled job waiting with its reason until a runner that
// can take it registers, and its runtest naming the repository and its URL.
TEST_F(DispatcherParts, NamedRepositoriesLabelsAndWaitingThroughTheVerbs) {
  DispatchRequest unknown{commit_id('a'), "main"};
  unknown.repo = "x";
  Reply refused = wait_answer(send(unknown));
  ASSERT_EQ(refused.kind, Reply::Kind::Err);
  EXPECT_EQ(refused.reason(), "unknown repository 'x' (announce it with: repo x <url>)");

  ASSERT_EQ(wait_answer(send(RepoRequest{"x", "https://example.org/x.git", false})).kind,
            Reply::Kind::Ok);
  {
    MutexLock lock(data_->mutex);
    ASSERT_EQ(data_->repos.count("x"), 1u);
    EXPECT_EQ(data_->repos["x"].url, "https://example.org/x.git");
  }
  DispatchRequest labelled = unknown;
  labelled.required = {"gpu"};
  Reply queued = wait_answer(send(labelled));
  ASSERT_EQ(queued.kind, Reply::Kind::Ok);
  EXPECT_EQ(queued.args, std::vector<std::string>{"1"});
  // The same commit in the default repository is another job.
  Reply other = wait_answer(send(DispatchRequest{commit_id('a'), "main"}));
  EXPECT_EQ(other.args, std::vector<std::string>{"2"});

  auto status = parse_status_reply(wait_answer(send(StatusRequest{})));
  ASSERT_TRUE(status.ok()) << status.error();
  EXPECT_EQ(status->repos, 1u);
  EXPECT_EQ(status->jobs_waiting, 2u);
  JobsRequest of_x;
  of_x.repo = "x";
  auto jobs = parse_jobs_reply(wait_answer(send(of_x)));
  ASSERT_TRUE(jobs.ok()) << jobs.error();
  ASSERT_EQ(jobs->jobs.size(), 1u);
  EXPECT_EQ(jobs->jobs[0].repo, "x");
  EXPECT_EQ(jobs->jobs[0].waiting, "waiting for a runner");
  JobsRequest of_default;
  of_default.repo = "-";
  jobs = parse_jobs_reply(wait_answer(send(of_default)));
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->jobs.size(), 1u);
  EXPECT_EQ(jobs->jobs[0].id, 2u);
  auto repos = parse_repos_reply(wait_answer(send(ReposRequest{})));
  ASSERT_TRUE(repos.ok()) << repos.error();
  ASSERT_EQ(repos->repos.size(), 1u);
  EXPECT_EQ(repos->repos[0].name, "x");
  EXPECT_EQ(repos->repos[0].jobs_queued, 1u);

  // A runner of named repositories without the label: job 1 still waits, now for the label.
  FakeRunner& runner = runner_;
  RegisterRequest named{"127.0.0.1", runner.port()};
  named.repos = RepoScope::Named;
  ASSERT_EQ(wait_answer(send(named)).kind, Reply::Kind::Ok);
  jobs = parse_jobs_reply(wait_answer(send(of_x)));
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->jobs.size(), 1u);
  EXPECT_EQ(jobs->jobs[0].waiting, "waiting for a runner with gpu");
  EXPECT_EQ(runner.runtests(), 0u);
  // Registering again with the label and two slots updates it: job 1 goes to it.
  named.labels = {"gpu"};
  named.slots = 2;
  ASSERT_EQ(wait_answer(send(named)).kind, Reply::Kind::Ok);
  ASSERT_TRUE(test::wait_until([&] { return runner.runtests() == 1; }));
  EXPECT_EQ(runner.last_runtest(),
            "runtest 1 1 " + commit_id('a') + " main repo=x url=https://example.org/x.git");
  auto runners = parse_runners_reply(wait_answer(send(RunnersRequest{})));
  ASSERT_TRUE(runners.ok()) << runners.error();
  ASSERT_EQ(runners->runners.size(), 1u);
  EXPECT_EQ(runners->runners[0].slots, 2u);
  EXPECT_EQ(runners->runners[0].labels, std::vector<std::string>{"gpu"});
  EXPECT_EQ(runners->runners[0].repos, RepoScope::Named);
  {
    MutexLock lock(data_->mutex);
    EXPECT_EQ(data_->runners.at(runner.address()).slots, 2u);
  }
}

}  // namespace
}  // namespace ci
