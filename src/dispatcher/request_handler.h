// The dispatcher's verbs: each request, parsed, becomes scheduler calls, and its answer
// a typed reply. A change is answered only once it is durable (through the group
// committer); a query is answered at once from the scheduler.
#pragma once

#include <functional>
#include <string>

#include "ci/clock.h"
#include "ci/net.h"
#include "ci/protocol.h"
#include "dispatcher/cancel_sender.h"
#include "dispatcher/feed_hub.h"
#include "dispatcher/group_committer.h"
#include "dispatcher/guarded_scheduler.h"
#include "dispatcher/log_store.h"
#include "dispatcher/offer_sender.h"
#include "dispatcher/result_writer.h"
#include "dispatcher/store.h"

namespace ci {

class RequestHandler {
 public:
  // `jobs` lists at most this many jobs, the newest: a larger limit is clamped to it.
  static constexpr uint64_t kMaxJobsListed = 10000;

  // What answers one peer's request: called once, from any thread, and for a change
  // from the store thread with the scheduler's mutex held: it must not call back into
  // the dispatcher (the line server's responder only queues the bytes).
  using Answer = std::function<void(const Reply&)>;

  // The parts the verbs beyond the seed's reach: the feed, the logs, the store's test
  // cases and the runners to tell of a cancel.
  struct Feed {
    FeedHub& hub;
    LogStore& logs;
    Store& store;
    CancelSender& cancels;
  };

  RequestHandler(GuardedScheduler& state, GroupCommitter& committer, OfferSender& offers,
                 const ResultWriter& writer, Feed feed, Clock& clock);

  // For the line server: answers through `respond`, closing the connection after ERR.
  void handle(const Frame& frame, const std::string& peer, Responder respond);
  void handle(const Request& request, Answer answer) EXCLUDES(state_.mutex);

 private:
  void on_register(const RegisterRequest& r, Answer answer) EXCLUDES(state_.mutex);
  void on_unregister(const UnregisterRequest& r, Answer answer) EXCLUDES(state_.mutex);
  void on_dispatch(const DispatchRequest& r, Answer answer) EXCLUDES(state_.mutex);
  void on_results(const ResultsRequest& r, Answer answer) EXCLUDES(state_.mutex);
  void on_repo(const RepoRequest& r, Answer answer) EXCLUDES(state_.mutex);
  Reply on_repos() EXCLUDES(state_.mutex);
  void on_retry(const RetryRequest& r, Answer answer) EXCLUDES(state_.mutex);
  void on_abandon(const AbandonRequest& r, Answer answer) EXCLUDES(state_.mutex);
  Reply on_status() EXCLUDES(state_.mutex);
  Reply on_runners() EXCLUDES(state_.mutex);
  Reply on_jobs(const JobsRequest& r) EXCLUDES(state_.mutex);
  void on_log(const LogRequest& r, Answer answer) EXCLUDES(state_.mutex);
  void on_cancel(const CancelRequest& r, Answer answer) EXCLUDES(state_.mutex);
  Reply on_logread(const LogReadRequest& r) EXCLUDES(state_.mutex);
  Reply on_tests(const TestsRequest& r) EXCLUDES(state_.mutex);
  Reply on_job(const JobRequest& r) EXCLUDES(state_.mutex);
  Reply on_snapshot(const SnapshotRequest& r) EXCLUDES(state_.mutex);

  // Answers `reply` once the changes made so far (and the offers they make possible,
  // written with them) are durable; ERR if they cannot be made so.
  void answer_when_saved(Reply reply, Answer answer) REQUIRES(state_.mutex);

  GuardedScheduler& state_;
  GroupCommitter& committer_;
  OfferSender& offers_;
  const ResultWriter& writer_;
  Feed feed_;
  Clock& clock_;
};

}  // namespace ci
