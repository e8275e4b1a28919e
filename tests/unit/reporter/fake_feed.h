// A dispatcher reduced to its event feed, for the reporter's tests: it answers
// `events` (waiting for news as the real one does), `snapshot`, `tests` and `logread`
// from lists the test fills, and can trim its feed to play a retention the reporter
// fell behind.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ci/events.h"
#include "ci/mutex.h"
#include "ci/net.h"
#include "ci/replies.h"

namespace ci::reporter::test_peer {

class FakeFeed {
 public:
  ~FakeFeed() { stop(); }
  // On `port`, or an ephemeral one; fails the current test if it cannot listen.
  void start(uint16_t port = 0, const std::string& token = "");
  void stop();
  uint16_t port() const { return port_; }

  // Appends an event (its seq is set to the next one) and wakes waiting `events` calls;
  // a job event also updates the job as `snapshot` shows it. Returns the seq.
  uint64_t add(FeedEvent event);
  // Drops the events up to `seq` from the feed (as its retention would).
  void trim(uint64_t seq);
  void set_cases(JobId job, std::vector<TestCase> cases);
  void set_log(JobId job, std::string bytes, bool done);
  // What `runners` answers.
  void set_runners(std::vector<RunnerRow> runners);
  // `events` calls answered so far.
  size_t events_calls();

 private:
  Response handle(const Frame& frame);
  Reply events(const EventsRequest& request) EXCLUDES(mu_);

  std::unique_ptr<LineServer> server_;
  uint16_t port_ = 0;
  Mutex mu_;
  CondVar news_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<FeedEvent> events_ GUARDED_BY(mu_);
  uint64_t next_seq_ GUARDED_BY(mu_) = 1;
  uint64_t trimmed_ GUARDED_BY(mu_) = 0;
  std::map<JobId, JobInfo> jobs_ GUARDED_BY(mu_);
  std::map<JobId, std::vector<TestCase>> cases_ GUARDED_BY(mu_);
  std::map<JobId, std::pair<std::string, bool>> logs_ GUARDED_BY(mu_);
  size_t events_calls_ GUARDED_BY(mu_) = 0;
  std::vector<RunnerRow> runners_ GUARDED_BY(mu_);
};

// Events as the dispatcher would send them.
FeedEvent job_event(EventKind kind, JobInfo job);
FeedEvent finished(JobInfo job, std::vector<TestCase> cases);
FeedEvent runner_event(EventKind kind, const std::string& runner);
// A commit id made from a short label (its bytes in hex, padded to 40 digits).
std::string sha(const std::string& label);
// A job on `branch` at commit sha(`commit`) by `author`, in `state`.
JobInfo make_job(JobId id, const std::string& commit, const std::string& branch,
                 const std::string& state, const std::string& author = "Alice");
TestCase test_case(const std::string& name, CaseOutcome outcome);

}  // namespace ci::reporter::test_peer
