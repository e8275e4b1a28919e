// The writing side of the read model: applies the feed's events and snapshot pages to
// the SQLite file, each batch in one transaction together with the last applied seq
// and the notifications it causes, so that a reporter killed at any moment resumes
// where it stopped, applying nothing twice and losing no notification.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ci/events.h"
#include "ci/replies.h"
#include "ci/result.h"

namespace ci::reporter {

struct ApplyResult {
  std::vector<size_t> applied;  // indices of the events that changed something
  size_t notifications = 0;     // outbox rows written
};

class ReadModel {
 public:
  // `targets`: the notification targets (their names); each notification is written
  // once for each.
  static Result<std::unique_ptr<ReadModel>> open(const std::string& path,
                                                 std::vector<std::string> targets);
  ~ReadModel();
  ReadModel(const ReadModel&) = delete;
  ReadModel& operator=(const ReadModel&) = delete;

  Result<uint64_t> last_seq();
  // Applies the events with a seq above last_seq, in order, and stores the highest
  // seq as last_seq, all in one transaction. A job's event changes its row only when
  // the job's seq is newer than the row's.
  Result<ApplyResult> apply(const std::vector<FeedEvent>& events);
  // A snapshot page: each job whose seq is newer than its row, and the cases of the
  // finished ones. With `follow_from`, last_seq becomes it in the same transaction.
  // Writes no notification: a snapshot is history, not news.
  Result<void> apply_snapshot(const std::vector<JobInfo>& jobs,
                              const std::map<JobId, std::vector<TestCase>>& cases,
                              std::optional<uint64_t> follow_from);
  // The runners as the dispatcher lists them now (after a snapshot: the feed's runner
  // events before it are gone); those not listed are marked left.
  Result<void> replace_runners(const std::vector<RunnerRow>& runners);

 private:
  struct Impl;
  explicit ReadModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ci::reporter
