#include "reporter/read_model.h"

#include "ci/validate.h"
#include "reporter/json.h"
#include "reporter/schema.h"

namespace ci::reporter {

namespace {

constexpr char kUpsertJob[] = R"sql(
INSERT INTO jobs(id, seq, commit_id, branch, author, email, subject, commit_time, state,
  status, attempt, runner, tests_run, tests_failed, duration_ms, queued_ms, started_ms,
  finished_ms, reason, repo, required, waiting)
VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
  ?20, ?21, ?22)
ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, commit_id = excluded.commit_id,
  branch = excluded.branch, author = excluded.author, email = excluded.email,
  subject = excluded.subject, commit_time = excluded.commit_time, state = excluded.state,
  status = excluded.status, attempt = excluded.attempt, runner = excluded.runner,
  tests_run = excluded.tests_run, tests_failed = excluded.tests_failed,
  duration_ms = excluded.duration_ms, queued_ms = excluded.queued_ms,
  started_ms = excluded.started_ms, finished_ms = excluded.finished_ms,
  reason = excluded.reason, repo = excluded.repo, required = excluded.required,
  waiting = excluded.waiting
WHERE excluded.seq > jobs.seq)sql";

// A branch's state as its newest finished job says; `since_job` changes only with it.
// A branch is one of a repository (?5 in each: '' the default one).
constexpr char kBranchState[] =
    "SELECT state, job, since_job FROM branches WHERE name = ?1 AND repo = ?5";
constexpr char kSetBranch[] = R"sql(
INSERT INTO branches(repo, name, state, job, since_job) VALUES(?5, ?1, ?2, ?3, ?4)
ON CONFLICT(repo, name) DO UPDATE SET state = excluded.state, job = excluded.job,
  since_job = excluded.since_job)sql";
// The first job of the branch's current streak in `?2` (passing or failing): its oldest
// finished job in that state after the newest one in the other. Jobs finish out of order
// on several runners: an older job finishing late may start the streak earlier.
constexpr char kStreakStart[] = R"sql(
SELECT MIN(id) FROM jobs WHERE branch = ?1 AND repo = ?5 AND state = 'finished'
  AND status IN ('passed', 'failed', 'error', 'timeout') AND (status = 'passed') = (?2 = 'passing')
  AND id > (SELECT COALESCE(MAX(id), 0) FROM jobs WHERE branch = ?1 AND repo = ?5
            AND state = 'finished'
            AND status IN ('passed', 'failed', 'error', 'timeout')
            AND (status = 'passed') != (?2 = 'passing')))sql";

// A runner's job ?2 ended or went back to the queue: a runner of several slots stays busy
// with its newest other job, if it has one; else it is idle.
constexpr char kRunnerAfterJob[] = R"sql(
UPDATE runners SET
  job = COALESCE((SELECT MAX(id) FROM jobs WHERE runner = ?1 AND id != ?2
                  AND state IN ('offered', 'running', 'finishing')), 0),
  state = CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE runner = ?1 AND id != ?2
                            AND state IN ('offered', 'running', 'finishing'))
          THEN 'busy' ELSE 'idle' END
WHERE address = ?1 AND state = 'busy')sql";

int64_t to_i64(uint64_t v) { return static_cast<int64_t>(v); }

}  // namespace

struct ReadModel::Impl {
  sql::Database db;
  std::vector<std::string> targets;
  sql::Statement get_seq, set_seq, upsert_job, log_size, put_case, branch_state, set_branch,
      streak_start, put_outbox, runner_joined, runner_left, runner_busy, runner_idle;

  Result<void> prepare() {
    struct Item {
      sql::Statement* statement;
      const char* text;
    };
    const Item items[] = {
        {&get_seq, "SELECT value FROM meta WHERE key = 'last_seq'"},
        {&set_seq, "UPDATE meta SET value = ?1 WHERE key = 'last_seq'"},
        {&upsert_job, kUpsertJob},
        {&log_size, "UPDATE jobs SET log_size = MAX(log_size, ?2) WHERE id = ?1"},
        {&put_case,
         "INSERT OR REPLACE INTO cases(job, attempt, name, outcome, ms, message, branch, repo) "
         "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
        {&branch_state, kBranchState},
        {&set_branch, kSetBranch},
        {&streak_start, kStreakStart},
        {&put_outbox, "INSERT INTO outbox(target, body) VALUES(?1, ?2)"},
        {&runner_joined,
         "INSERT INTO runners(address, state, job, joined_ms, left_ms) VALUES(?1, 'idle', 0, ?2, "
         "0) "
         "ON CONFLICT(address) DO UPDATE SET state = 'idle', job = 0, joined_ms = ?2, left_ms = 0"},
        {&runner_left,
         "UPDATE runners SET state = 'left', job = 0, left_ms = ?2 WHERE address = ?1"},
        {&runner_busy,
         "INSERT INTO runners(address, state, job, joined_ms, left_ms) VALUES(?1, 'busy', ?2, 0, "
         "0) "
         "ON CONFLICT(address) DO UPDATE SET state = 'busy', job = ?2"},
        {&runner_idle, kRunnerAfterJob},
    };
    for (const auto& item : items) {
      auto s = db.prepare(item.text);
      if (!s) return Error{s.error()};
      *item.statement = std::move(*s);
    }
    return {};
  }

  Result<uint64_t> read_seq() {
    auto row = get_seq.step();
    uint64_t seq = row && *row ? static_cast<uint64_t>(get_seq.column_int(0)) : 0;
    get_seq.reset();
    if (!row) return Error{row.error()};
    return seq;
  }

  // True when the row changed (the job's seq is newer than the row's).
  Result<bool> upsert(const JobInfo& job) {
    auto& s = upsert_job;
    s.bind(1, to_i64(job.id)).bind(2, to_i64(job.seq)).bind(3, job.commit).bind(4, job.branch);
    s.bind(5, job.commit_info.author).bind(6, job.commit_info.email);
    s.bind(7, job.commit_info.subject).bind(8, job.commit_info.time).bind(9, job.state);
    if (job.status)
      s.bind(10, std::string(to_string(*job.status)));
    else
      s.bind_null(10);
    s.bind(11, int64_t{job.attempt}).bind(12, job.runner).bind(13, job.tests_run);
    s.bind(14, job.tests_failed).bind(15, to_i64(job.duration_ms)).bind(16, job.queued_ms);
    s.bind(17, job.started_ms).bind(18, job.finished_ms).bind(19, job.reason);
    s.bind(20, job.repo).bind(21, join_labels(job.required)).bind(22, job.waiting);
    if (auto r = s.run(); !r) return Error{r.error()};
    return db.changes() > 0;
  }

  Result<void> put_cases(const JobInfo& job, const std::vector<TestCase>& cases) {
    for (const auto& c : cases) {
      put_case.bind(1, to_i64(job.id)).bind(2, int64_t{job.attempt}).bind(3, c.name);
      put_case.bind(4, std::string(to_string(c.outcome))).bind(5, to_i64(c.duration_ms));
      put_case.bind(6, c.message).bind(7, job.branch).bind(8, job.repo);
      if (auto r = put_case.run(); !r) return r;
    }
    return {};
  }

  Result<void> notify(const nlohmann::json& body, size_t* count) {
    std::string text = json_text(body);
    for (const auto& target : targets) {
      if (auto r = put_outbox.bind(1, target).bind(2, text).run(); !r) return r;
      ++*count;
    }
    return {};
  }

  // The branch's state after a finished job; a notification when it changed.
  Result<void> update_branch(const FeedEvent& event, bool announce, size_t* count) {
    const JobInfo& job = event.job;
    std::string state = branch_state_of(job.status);
    if (state.empty()) return {};
    branch_state.bind(1, job.branch).bind(5, job.repo);
    auto row = branch_state.step();
    if (!row) return Error{row.error()};
    bool known = *row;
    std::string before = known ? branch_state.column_text(0) : "";
    auto newest = known ? static_cast<JobId>(branch_state.column_int(1)) : 0;
    auto since = known ? static_cast<JobId>(branch_state.column_int(2)) : job.id;
    branch_state.reset();
    if (known && newest > job.id) {  // an older job finishing late: the state stays
      auto first = streak_start.bind(1, job.branch).bind(2, before).bind(5, job.repo).step();
      auto start = first && *first ? static_cast<JobId>(streak_start.column_int(0)) : since;
      streak_start.reset();
      if (!first) return Error{first.error()};
      if (start == 0 || start == since) return {};
      return set_branch.bind(1, job.branch)
          .bind(5, job.repo)
          .bind(2, before)
          .bind(3, to_i64(newest))
          .bind(4, to_i64(start))
          .run();
    }
    if (before != state) since = job.id;
    if (auto r = set_branch.bind(1, job.branch)
                     .bind(5, job.repo)
                     .bind(2, state)
                     .bind(3, to_i64(job.id))
                     .bind(4, to_i64(since))
                     .run();
        !r)
      return r;
    if (!announce || !known || before == state) return {};
    nlohmann::json body = {{"id", std::to_string(event.seq) + ".branch." + state},
                           {"event", "branch." + state},
                           {"seq", event.seq},
                           {"repo", job.repo},
                           {"branch", job.branch},
                           {"from", before},
                           {"to", state},
                           {"job", job_json(job)}};
    if (state == "failing")
      body["broken_by"] = {{"job", job.id},
                           {"commit", job.commit},
                           {"author", job.commit_info.author},
                           {"subject", job.commit_info.subject}};
    return notify(body, count);
  }

  Result<void> runner_after(const FeedEvent& event) {
    const JobInfo& job = event.job;
    if (job.runner.empty()) return {};
    auto& s = event.kind == EventKind::JobStarted ? runner_busy : runner_idle;
    return s.bind(1, job.runner).bind(2, to_i64(job.id)).run();
  }

  // One event; *changed says whether it changed anything.
  Result<void> apply_one(const FeedEvent& event, bool* changed, size_t* count) {
    *changed = true;
    switch (event.kind) {
      case EventKind::RunnerJoined:
        return runner_joined.bind(1, event.runner).bind(2, event.time_ms).run();
      case EventKind::RunnerLeft:
        return runner_left.bind(1, event.runner).bind(2, event.time_ms).run();
      case EventKind::JobLog: {
        auto r = log_size.bind(1, to_i64(event.job.id)).bind(2, to_i64(event.log_size)).run();
        *changed = r && db.changes() > 0;
        return r;
      }
      default:
        break;
    }
    auto applied = upsert(event.job);
    if (!applied) return Error{applied.error()};
    *changed = *applied;
    if (!*applied) return {};
    if (auto r = runner_after(event); !r) return r;
    if (event.kind != EventKind::JobFinished && event.kind != EventKind::JobCancelled) return {};
    if (auto r = put_cases(event.job, event.cases); !r) return r;
    nlohmann::json body = {{"id", std::to_string(event.seq) + ".job.finished"},
                           {"event", "job.finished"},
                           {"seq", event.seq},
                           {"job", job_json(event.job)}};
    if (auto r = notify(body, count); !r) return r;
    return update_branch(event, true, count);
  }
};

ReadModel::ReadModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ReadModel::~ReadModel() = default;

Result<std::unique_ptr<ReadModel>> ReadModel::open(const std::string& path,
                                                   std::vector<std::string> targets) {
  auto db = open_read_model(path);
  if (!db) return Error{db.error()};
  auto impl = std::make_unique<Impl>(
      Impl{std::move(*db), std::move(targets), {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}});
  if (auto r = impl->prepare(); !r) return Error{r.error()};
  return std::unique_ptr<ReadModel>(new ReadModel(std::move(impl)));
}

Result<uint64_t> ReadModel::last_seq() { return impl_->read_seq(); }

Result<ApplyResult> ReadModel::apply(const std::vector<FeedEvent>& events) {
  sql::Transaction tx(impl_->db);
  if (!tx.begun()) return Error{tx.begun().error()};
  auto last = impl_->read_seq();
  if (!last) return Error{last.error()};
  uint64_t seq = *last;
  ApplyResult result;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].seq <= seq) continue;  // applied before (a replayed reply)
    seq = events[i].seq;
    bool changed = false;
    if (auto r = impl_->apply_one(events[i], &changed, &result.notifications); !r)
      return Error{r.error()};
    if (changed) result.applied.push_back(i);
  }
  if (seq == *last) return result;
  if (auto r = impl_->set_seq.bind(1, to_i64(seq)).run(); !r) return Error{r.error()};
  if (auto r = tx.commit(); !r) return Error{r.error()};
  return result;
}

Result<void> ReadModel::apply_snapshot(const std::vector<JobInfo>& jobs,
                                       const std::map<JobId, std::vector<TestCase>>& cases,
                                       std::optional<uint64_t> follow_from) {
  sql::Transaction tx(impl_->db);
  if (!tx.begun()) return tx.begun();
  for (const auto& job : jobs) {
    auto applied = impl_->upsert(job);
    if (!applied) return Error{applied.error()};
    if (!*applied) continue;
    if (auto it = cases.find(job.id); it != cases.end())
      if (auto r = impl_->put_cases(job, it->second); !r) return r;
    FeedEvent finished;
    finished.job = job;
    size_t none = 0;
    if (job.state == "finished")
      if (auto r = impl_->update_branch(finished, false, &none); !r) return r;
  }
  if (follow_from)
    if (auto r = impl_->set_seq.bind(1, to_i64(*follow_from)).run(); !r) return r;
  return tx.commit();
}

Result<void> ReadModel::replace_runners(const std::vector<RunnerRow>& runners) {
  sql::Transaction tx(impl_->db);
  if (!tx.begun()) return tx.begun();
  if (auto r = impl_->db.exec("UPDATE runners SET state = 'left', job = 0"); !r) return r;
  auto put = impl_->db.prepare(
      "INSERT INTO runners(address, state, job, joined_ms, left_ms) VALUES(?1, ?2, ?3, 0, 0) "
      "ON CONFLICT(address) DO UPDATE SET state = ?2, job = ?3, left_ms = 0");
  if (!put) return Error{put.error()};
  for (const auto& runner : runners) {
    // The dispatcher's words for a runner with a job (offered, running) are busy here.
    std::string state = runner.job                      ? "busy"
                        : runner.state == "unreachable" ? "unreachable"
                                                        : "idle";
    if (auto r = put->bind(1, runner.address).bind(2, state).bind(3, to_i64(runner.job)).run(); !r)
      return r;
  }
  return tx.commit();
}

}  // namespace ci::reporter
