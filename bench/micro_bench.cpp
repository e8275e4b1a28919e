// Micro benchmarks (Google Benchmark): the protocol's framing, parsing and serializing
// of the two messages every job costs the dispatcher (a dispatch and a results with a
// 4 KiB body), one scheduling decision with 1,000 runners and 100,000 queued jobs, the
// crypto of one token handshake, and the observer's plan of a round when an 800-commit
// orphan branch is pushed on a 20,000-commit history.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ci/auth.h"
#include "ci/framing.h"
#include "ci/git.h"
#include "ci/protocol.h"
#include "dispatcher/scheduler.h"
#include "observer/commit_tracker.h"

namespace {

std::string commit_id(uint64_t n) {
  char buf[41];
  std::snprintf(buf, sizeof buf, "%016llx%024llx", static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(n * 2654435761ULL));
  return buf;
}

ci::ResultsRequest results_4k() {
  ci::ResultsRequest r;
  r.job = 123456;
  r.attempt = 1;
  r.runner = "127.0.0.1:8900";
  r.status = ci::TestStatus::Passed;
  r.tests_run = 42;
  r.tests_failed = 0;
  r.duration_ms = 87;
  r.output.reserve(4096);
  while (r.output.size() < 4096) r.output += "test_something (tests.TestCase) ... ok\n";
  r.output.resize(4096);
  return r;
}

// Frames one message from its bytes and parses it, as a server connection does.
void parse_wire(benchmark::State& state, const std::string& wire) {
  ci::FrameParser parser(ci::FrameLimits{}, ci::request_has_body);
  for (auto _ : state) {
    size_t used = 0;
    auto status = parser.feed(wire, &used);
    if (status != ci::FrameParser::Status::Done) {
      state.SkipWithError("the message did not frame");
      break;
    }
    auto request = ci::parse_request(parser.take());
    if (!request) {
      state.SkipWithError(request.error().c_str());
      break;
    }
    benchmark::DoNotOptimize(request);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
}

void BM_ParseDispatch(benchmark::State& state) {
  parse_wire(state, ci::serialize(ci::serialize_request(
                        ci::Request{ci::DispatchRequest{commit_id(7), "master"}})));
}
BENCHMARK(BM_ParseDispatch);

void BM_ParseResults4KiB(benchmark::State& state) {
  parse_wire(state, ci::serialize(ci::serialize_request(ci::Request{results_4k()})));
}
BENCHMARK(BM_ParseResults4KiB);

void BM_SerializeDispatch(benchmark::State& state) {
  const ci::Request request{ci::DispatchRequest{commit_id(7), "master"}};
  for (auto _ : state) {
    std::string wire = ci::serialize(ci::serialize_request(request));
    benchmark::DoNotOptimize(wire);
  }
}
BENCHMARK(BM_SerializeDispatch);

void BM_SerializeResults4KiB(benchmark::State& state) {
  const ci::Request request{results_4k()};
  for (auto _ : state) {
    std::string wire = ci::serialize(ci::serialize_request(request));
    benchmark::DoNotOptimize(wire);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * 4096));
}
BENCHMARK(BM_SerializeResults4KiB);

void BM_SerializeRuntest(benchmark::State& state) {
  const ci::Request request{ci::RuntestRequest{123456, 1, commit_id(7), "master"}};
  for (auto _ : state) {
    std::string wire = ci::serialize(ci::serialize_request(request));
    benchmark::DoNotOptimize(wire);
  }
}
BENCHMARK(BM_SerializeRuntest);

// One job through the scheduler as the dispatcher drives it: offer it to the runner
// idle longest, the runner accepts, its result is checked and recorded (the runner is
// free again), and the changes are taken for the store and the log, as the
// dispatcher's store thread does after each batch. The queue starts at 100,000 jobs and
// the run takes exactly 100,000 decisions, so it never runs dry.
constexpr int kQueued = 100000;
constexpr int kRunners = 1000;

// kQueued jobs queued and kRunners idle runners, with nothing left to write or log.
void fill(ci::Scheduler& scheduler, ci::TimePoint t) {
  for (int i = 0; i < kQueued; ++i) scheduler.submit(commit_id(i), "master", t);
  for (int i = 0; i < kRunners; ++i)
    scheduler.register_runner("127.0.0.1:" + std::to_string(10000 + i), t);
  (void)scheduler.take_dirty();
  (void)scheduler.take_events();
}

void BM_SchedulerDecision(benchmark::State& state) {
  ci::Scheduler scheduler(ci::Scheduler::Options{});
  auto t = std::chrono::steady_clock::now();
  fill(scheduler, t);

  ci::JobOutcome outcome;
  outcome.status = ci::TestStatus::Passed;
  outcome.tests_run = 1;
  outcome.tests_failed = 0;
  outcome.duration_ms = 1;
  outcome.attempt = 1;
  for (auto _ : state) {
    auto offer = scheduler.next_offer(t);
    if (!offer) {
      state.SkipWithError("the queue ran dry");
      break;
    }
    benchmark::DoNotOptimize(scheduler.take_dirty());
    scheduler.offer_accepted(*offer, t);
    benchmark::DoNotOptimize(scheduler.take_dirty());
    benchmark::DoNotOptimize(scheduler.take_events());
    auto verdict = scheduler.check_result(offer->job, offer->attempt, offer->runner);
    if (verdict != ci::ResultVerdict::Accept) {
      state.SkipWithError("the result was not accepted");
      break;
    }
    outcome.runner = offer->runner;
    scheduler.finish_result(offer->job, outcome, t);
    benchmark::DoNotOptimize(scheduler.take_dirty());
    benchmark::DoNotOptimize(scheduler.take_events());
  }
  state.counters["queued_at_start"] = kQueued;
  state.counters["runners"] = kRunners;
}
BENCHMARK(BM_SchedulerDecision)->Iterations(kQueued)->Unit(benchmark::kMicrosecond);

// The same decision without draining the store's and the log's changes: the
// scheduler's own bookkeeping only.
void BM_SchedulerDecisionCore(benchmark::State& state) {
  ci::Scheduler scheduler(ci::Scheduler::Options{});
  auto t = std::chrono::steady_clock::now();
  fill(scheduler, t);
  ci::JobOutcome outcome;
  outcome.status = ci::TestStatus::Passed;
  outcome.attempt = 1;
  for (auto _ : state) {
    auto offer = scheduler.next_offer(t);
    if (!offer) {
      state.SkipWithError("the queue ran dry");
      break;
    }
    scheduler.offer_accepted(*offer, t);
    scheduler.check_result(offer->job, offer->attempt, offer->runner);
    outcome.runner = offer->runner;
    scheduler.finish_result(offer->job, outcome, t);
    if (state.iterations() % 1024 == 0) {
      // Bounded growth of the pending changes, at a negligible share of the time.
      (void)scheduler.take_dirty();
      (void)scheduler.take_events();
    }
  }
}
BENCHMARK(BM_SchedulerDecisionCore)->Iterations(kQueued)->Unit(benchmark::kMicrosecond);

// The crypto an authenticated connection costs both sides together (ci/auth.h): each
// draws a nonce, makes its proof and checks the other's: two nonces and four
// HMAC-SHA256 of libcrypto.
void BM_Handshake(benchmark::State& state) {
  const std::string token = "c2VjcmV0LW9mLWF0LWxlYXN0LTMyLWNoYXJhY3RlcnM=";
  for (auto _ : state) {
    std::string server_nonce = ci::make_nonce();
    std::string client_nonce = ci::make_nonce();
    std::string proof = ci::client_proof(token, ci::kDispatcherService, server_nonce, client_nonce);
    bool client_ok =
        ci::check_client_proof(token, ci::kDispatcherService, server_nonce, client_nonce, proof);
    std::string answer =
        ci::server_proof(token, ci::kDispatcherService, server_nonce, client_nonce);
    bool server_ok =
        ci::check_server_proof(token, ci::kDispatcherService, server_nonce, client_nonce, answer);
    if (!client_ok || !server_ok) state.SkipWithError("a proof did not verify");
    benchmark::DoNotOptimize(answer);
  }
}
BENCHMARK(BM_Handshake);

// A repository made once with git fast-import: `master` with 20,000 commits a second
// apart, and two orphan branches of 800 commits, `pushed` dated after all of them and
// `backdated` before (dates are the pusher's to choose).
class PushedRepository {
 public:
  static PushedRepository& get() {
    static PushedRepository repo;
    return repo;
  }
  ~PushedRepository() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  const std::string& path() const { return dir_; }
  bool ok() const { return ok_; }

 private:
  PushedRepository() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "ci-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return;
    dir_ = tmpl;
    std::string stream;
    auto add = [&](const std::string& branch, int count, long long first_date) {
      for (int i = 0; i < count; ++i) {
        std::string message = branch + " " + std::to_string(i);
        stream += "commit refs/heads/" + branch + "\ncommitter Bench <bench@example.com> " +
                  std::to_string(first_date + i) + " +0000\ndata " +
                  std::to_string(message.size()) + "\n" + message + "\n\n";
      }
    };
    add("master", 20000, 1700000000);
    add("pushed", 800, 1700000000 + 30000);
    add("backdated", 800, 1000000000);
    std::ofstream(dir_ + "/stream", std::ios::binary) << stream;
    std::string cmd = "git init -q --bare '" + dir_ + "/repo.git' && git -C '" + dir_ +
                      "/repo.git' fast-import --quiet < '" + dir_ + "/stream'";
    ok_ = std::system(cmd.c_str()) == 0;
  }
  std::string dir_;
  bool ok_ = false;
};

// One round's plan as the observer makes it, `master` known and `branch` new: the
// repository opened anew (no commit cached from an earlier iteration), the first look
// that counts master's tip as seen, then the walk and the hand-overs listed.
void plan_orphan_branch(benchmark::State& state, const std::string& branch) {
  auto& pushed = PushedRepository::get();
  if (!pushed.ok()) {
    state.SkipWithError("git fast-import failed");
    return;
  }
  std::string path = pushed.path() + "/repo.git";
  std::vector<ci::git::BranchTip> tips;
  {
    auto repo = ci::git::Repository::open(path);
    if (!repo) {
      state.SkipWithError(repo.error().c_str());
      return;
    }
    auto all = repo->branch_tips("");
    if (!all) {
      state.SkipWithError(all.error().c_str());
      return;
    }
    for (const auto& tip : *all)
      if (tip.branch == "master" || tip.branch == branch) tips.push_back(tip);
  }
  std::vector<ci::git::BranchTip> known;
  for (const auto& tip : tips)
    if (tip.branch == "master") known.push_back(tip);
  size_t read = 0;
  for (auto _ : state) {
    auto repo = ci::git::Repository::open(path);
    if (!repo) {
      state.SkipWithError(repo.error().c_str());
      break;
    }
    ci::observer::CommitTracker tracker(ci::observer::DispatchMode::PerCommit);
    (void)tracker.plan(known, *repo);  // the first look: master as seen
    auto report = tracker.plan(tips, *repo);
    if (!report || tracker.pending().size() != 800) {
      state.SkipWithError(report ? "not 800 commits planned" : report.error().c_str());
      break;
    }
    read = report->commits_read;
    benchmark::DoNotOptimize(tracker.pending());
  }
  state.counters["commits_read"] = static_cast<double>(read);
}

void BM_PlanOrphanBranch(benchmark::State& state) { plan_orphan_branch(state, "pushed"); }
BENCHMARK(BM_PlanOrphanBranch)->Unit(benchmark::kMillisecond);

void BM_PlanBackdatedOrphanBranch(benchmark::State& state) {
  plan_orphan_branch(state, "backdated");
}
BENCHMARK(BM_PlanBackdatedOrphanBranch)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
