#include "dispatcher/sqlite_store.h"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "ci/mutex.h"
#include "ci/sqlite.h"

namespace ci {

namespace {

// Each entry moves the schema from version i to i + 1. Never edit one that has
// shipped: add the next.
const char* const kMigrations[] = {
    R"sql(
    CREATE TABLE jobs(
      id INTEGER PRIMARY KEY,
      commit_id TEXT NOT NULL,
      branch TEXT NOT NULL,
      state TEXT NOT NULL,
      attempt INTEGER NOT NULL,
      runners TEXT NOT NULL,
      infra_failures INTEGER NOT NULL,
      status TEXT,
      tests_run INTEGER,
      tests_failed INTEGER,
      duration_ms INTEGER,
      result_runner TEXT,
      result_attempt INTEGER,
      reason TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      finished_at INTEGER,
      UNIQUE(commit_id, branch));
    CREATE TABLE runners(
      address TEXT PRIMARY KEY,
      registered_at INTEGER NOT NULL);
    )sql",
    // The event feed, test cases, and what the feed says of each job.
    R"sql(
    ALTER TABLE jobs ADD COLUMN info TEXT;
    ALTER TABLE jobs ADD COLUMN queued_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN started_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN finished_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE events(
      seq INTEGER PRIMARY KEY,
      kind TEXT NOT NULL,
      job INTEGER,
      attempt INTEGER,
      line TEXT NOT NULL);
    CREATE TABLE test_cases(
      job INTEGER NOT NULL,
      attempt INTEGER NOT NULL,
      idx INTEGER NOT NULL,
      name TEXT NOT NULL,
      outcome TEXT NOT NULL,
      duration_ms INTEGER NOT NULL,
      message TEXT,
      PRIMARY KEY(job, attempt, idx));
    )sql",
    // Many repositories: a job's repository and required labels (a job is unique by
    // repository, commit and branch), the repositories, runners' slots, labels and the
    // repositories they serve.
    R"sql(
    CREATE TABLE jobs_v3(
      id INTEGER PRIMARY KEY,
      commit_id TEXT NOT NULL,
      branch TEXT NOT NULL,
      state TEXT NOT NULL,
      attempt INTEGER NOT NULL,
      runners TEXT NOT NULL,
      infra_failures INTEGER NOT NULL,
      status TEXT,
      tests_run INTEGER,
      tests_failed INTEGER,
      duration_ms INTEGER,
      result_runner TEXT,
      result_attempt INTEGER,
      reason TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      finished_at INTEGER,
      info TEXT,
      queued_ms INTEGER NOT NULL DEFAULT 0,
      started_ms INTEGER NOT NULL DEFAULT 0,
      finished_ms INTEGER NOT NULL DEFAULT 0,
      seq INTEGER NOT NULL DEFAULT 0,
      repo TEXT NOT NULL DEFAULT '',
      required TEXT NOT NULL DEFAULT '',
      UNIQUE(repo, commit_id, branch));
    INSERT INTO jobs_v3(id, commit_id, branch, state, attempt, runners, infra_failures, status,
                        tests_run, tests_failed, duration_ms, result_runner, result_attempt,
                        reason, created_at, updated_at, finished_at, info, queued_ms,
                        started_ms, finished_ms, seq)
      SELECT id, commit_id, branch, state, attempt, runners, infra_failures, status,
             tests_run, tests_failed, duration_ms, result_runner, result_attempt,
             reason, created_at, updated_at, finished_at, info, queued_ms,
             started_ms, finished_ms, seq FROM jobs;
    DROP TABLE jobs;
    ALTER TABLE jobs_v3 RENAME TO jobs;
    ALTER TABLE runners ADD COLUMN slots INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE runners ADD COLUMN labels TEXT NOT NULL DEFAULT '';
    ALTER TABLE runners ADD COLUMN scope TEXT NOT NULL DEFAULT 'default';
    CREATE TABLE repos(
      name TEXT PRIMARY KEY,
      url TEXT NOT NULL,
      newest_first INTEGER NOT NULL DEFAULT 0);
    )sql",
};

RepoScope parse_scope(const std::string& word) {
  if (word == to_string(RepoScope::Named)) return RepoScope::Named;
  if (word == to_string(RepoScope::All)) return RepoScope::All;
  return RepoScope::Default;
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ' ';
    out += s;
  }
  return out;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

class SqliteStore : public Store {
 public:
  SqliteStore(sql::Database db, uint64_t event_retention)
      : db_(std::move(db)), retention_(event_retention) {}

  Result<void> init(SyncMode sync) {
    MutexLock lock(mutex_);
    // WAL keeps a commit durable against a process crash without a flush per commit;
    // FULL adds the flush that power loss needs.
    if (auto r = db_.exec("PRAGMA journal_mode=WAL"); !r) return r;
    if (auto r = db_.exec(sync == SyncMode::Full ? "PRAGMA synchronous=FULL"
                                                 : "PRAGMA synchronous=NORMAL");
        !r)
      return r;
    if (auto r = migrate(); !r) return r;
    auto upsert = db_.prepare(R"sql(
      INSERT INTO jobs(id, commit_id, branch, state, attempt, runners, infra_failures, status,
                       tests_run, tests_failed, duration_ms, result_runner, result_attempt,
                       reason, created_at, updated_at, finished_at, info, queued_ms,
                       started_ms, finished_ms, seq, repo, required)
      VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15,
             CASE WHEN ?4 = 'finished' THEN ?15 END, ?16, ?17, ?18, ?19, ?20, ?21, ?22)
      ON CONFLICT(id) DO UPDATE SET
        state = excluded.state, attempt = excluded.attempt, runners = excluded.runners,
        infra_failures = excluded.infra_failures, status = excluded.status,
        tests_run = excluded.tests_run, tests_failed = excluded.tests_failed,
        duration_ms = excluded.duration_ms, result_runner = excluded.result_runner,
        result_attempt = excluded.result_attempt, reason = excluded.reason,
        updated_at = excluded.updated_at, queued_ms = excluded.queued_ms,
        started_ms = excluded.started_ms, finished_ms = excluded.finished_ms,
        seq = excluded.seq,
        finished_at = CASE WHEN excluded.state = 'finished'
                           THEN COALESCE(jobs.finished_at, excluded.finished_at) END
    )sql");
    if (!upsert) return Error{upsert.error()};
    upsert_job_ = std::move(*upsert);
    auto add = db_.prepare(
        "INSERT INTO runners(address, registered_at, slots, labels, scope) "
        "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(address) DO UPDATE SET "
        "slots = excluded.slots, labels = excluded.labels, scope = excluded.scope");
    if (!add) return Error{add.error()};
    add_runner_ = std::move(*add);
    auto remove = db_.prepare("DELETE FROM runners WHERE address = ?1");
    if (!remove) return Error{remove.error()};
    remove_runner_ = std::move(*remove);
    auto repo = db_.prepare(
        "INSERT INTO repos(name, url, newest_first) VALUES(?1, ?2, ?3) "
        "ON CONFLICT(name) DO UPDATE SET url = excluded.url, "
        "newest_first = excluded.newest_first");
    if (!repo) return Error{repo.error()};
    upsert_repo_ = std::move(*repo);
    auto add_event = db_.prepare(
        "INSERT INTO events(seq, kind, job, attempt, line) "
        "VALUES(?1, ?2, ?3, ?4, ?5)");
    if (!add_event) return Error{add_event.error()};
    add_event_ = std::move(*add_event);
    auto add_case = db_.prepare(
        "INSERT OR REPLACE INTO test_cases(job, attempt, idx, name, outcome, duration_ms, "
        "message) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!add_case) return Error{add_case.error()};
    add_case_ = std::move(*add_case);
    auto trim = db_.prepare("DELETE FROM events WHERE seq <= ?1");
    if (!trim) return Error{trim.error()};
    trim_events_ = std::move(*trim);
    // Prepared once: a transaction per batch of changes should not parse SQL.
    for (auto [statement, sql] :
         {std::pair{&begin_, "BEGIN IMMEDIATE"}, std::pair{&commit_, "COMMIT"},
          std::pair{&rollback_, "ROLLBACK"}}) {
      auto prepared = db_.prepare(sql);
      if (!prepared) return Error{prepared.error()};
      *statement = std::move(*prepared);
    }
    return {};
  }

  Result<StoredState> load() override {
    MutexLock lock(mutex_);
    StoredState state;
    auto jobs = db_.prepare(
        "SELECT id, commit_id, branch, state, attempt, runners, infra_failures, status, "
        "tests_run, tests_failed, duration_ms, result_runner, result_attempt, reason, "
        "info, queued_ms, started_ms, finished_ms, seq, repo, required FROM jobs ORDER BY id");
    if (!jobs) return Error{jobs.error()};
    while (true) {
      auto row = jobs->step();
      if (!row) return Error{row.error()};
      if (!*row) break;
      Job job;
      job.id = static_cast<JobId>(jobs->column_int(0));
      job.commit = jobs->column_text(1);
      job.branch = jobs->column_text(2);
      job.state = parse_job_state(jobs->column_text(3));
      job.attempt = static_cast<uint32_t>(jobs->column_int(4));
      job.runners = split(jobs->column_text(5));
      job.infra_failures = static_cast<uint32_t>(jobs->column_int(6));
      if (!jobs->column_is_null(7)) {
        JobOutcome out;
        parse_test_status(jobs->column_text(7), &out.status);
        out.tests_run = jobs->column_int(8);
        out.tests_failed = jobs->column_int(9);
        out.duration_ms = static_cast<uint64_t>(jobs->column_int(10));
        out.runner = jobs->column_text(11);
        out.attempt = static_cast<uint32_t>(jobs->column_int(12));
        out.reason = jobs->column_text(13);
        job.outcome = out;
      }
      if (!jobs->column_is_null(14)) {
        if (auto info = parse_commit_info(jobs->column_text(14))) job.info = std::move(*info);
      }
      job.queued_ms = jobs->column_int(15);
      job.started_ms = jobs->column_int(16);
      job.finished_ms = jobs->column_int(17);
      job.seq = static_cast<uint64_t>(jobs->column_int(18));
      job.repo = jobs->column_text(19);
      job.required = split(jobs->column_text(20));
      state.jobs.push_back(std::move(job));
    }
    auto runners = db_.prepare(
        "SELECT address, slots, labels, scope FROM runners ORDER BY registered_at, address");
    if (!runners) return Error{runners.error()};
    while (true) {
      auto row = runners->step();
      if (!row) return Error{row.error()};
      if (!*row) break;
      StoredRunner r;
      r.address = runners->column_text(0);
      r.spec.slots = static_cast<uint32_t>(runners->column_int(1));
      r.spec.labels = split(runners->column_text(2));
      r.spec.scope = parse_scope(runners->column_text(3));
      state.runners.push_back(std::move(r));
    }
    auto repos = db_.prepare("SELECT name, url, newest_first FROM repos ORDER BY name");
    if (!repos) return Error{repos.error()};
    while (true) {
      auto row = repos->step();
      if (!row) return Error{row.error()};
      if (!*row) break;
      state.repos.push_back(
          {repos->column_text(0), repos->column_text(1), repos->column_int(2) != 0});
    }
    auto last = last_seq();
    if (!last) return Error{last.error()};
    state.last_seq = *last;
    return state;
  }

  Result<void> save(const std::vector<const Job*>& jobs,
                    const std::vector<StoredRunner>& runners_added,
                    const std::vector<std::string>& runners_removed,
                    const std::vector<FeedEvent>& feed,
                    const std::vector<Repository>& repos) override {
    if (jobs.empty() && runners_added.empty() && runners_removed.empty() && feed.empty() &&
        repos.empty())
      return {};
    MutexLock lock(mutex_);
    if (auto r = begin_.run(); !r) return r;
    auto result = write(jobs, runners_added, runners_removed, repos);
    if (result) result = write_feed(feed);
    if (result) result = commit_.run();
    if (!result) (void)rollback_.run();
    return result;
  }

  Result<FeedPage> read_events(uint64_t from, uint64_t max, size_t max_bytes) override {
    MutexLock lock(mutex_);
    return read_feed(from, max, max_bytes);
  }

  Result<std::vector<TestCase>> read_cases(JobId job, uint32_t attempt) override {
    MutexLock lock(mutex_);
    return cases_of(job, attempt);
  }

 private:
  Result<uint64_t> last_seq() REQUIRES(mutex_) {
    auto q = db_.prepare("SELECT COALESCE(MAX(seq), 0), COALESCE(MIN(seq), 0) FROM events");
    if (!q) return Error{q.error()};
    auto row = q->step();
    if (!row) return Error{row.error()};
    return static_cast<uint64_t>(q->column_int(0));
  }

  Result<void> write_feed(const std::vector<FeedEvent>& feed) REQUIRES(mutex_) {
    uint64_t newest = 0;
    for (const FeedEvent& e : feed) {
      // The cases go to their own table; the line holds the rest.
      FeedEvent line = e;
      line.cases.clear();
      add_event_.bind(1, static_cast<int64_t>(e.seq))
          .bind(2, std::string(to_string(e.kind)))
          .bind(5, serialize_event(line));
      if (e.job.id) {
        add_event_.bind(3, static_cast<int64_t>(e.job.id))
            .bind(4, static_cast<int64_t>(e.kind == EventKind::JobLog ? e.log_attempt
                                                                      : e.job.attempt));
      } else {
        add_event_.bind_null(3).bind_null(4);
      }
      if (auto r = add_event_.run(); !r) return r;
      if (e.kind == EventKind::JobFinished || e.kind == EventKind::JobCancelled)
        if (auto r = write_cases(e.job.id, e.job.attempt, e.cases); !r) return r;
      newest = std::max(newest, e.seq);
    }
    if (newest > retention_) {
      trim_events_.bind(1, static_cast<int64_t>(newest - retention_));
      if (auto r = trim_events_.run(); !r) return r;
    }
    return {};
  }

  Result<void> write_cases(JobId job, uint32_t attempt, const std::vector<TestCase>& cases)
      REQUIRES(mutex_) {
    int64_t idx = 0;
    for (const TestCase& c : cases) {
      add_case_.bind(1, static_cast<int64_t>(job))
          .bind(2, static_cast<int64_t>(attempt))
          .bind(3, idx++)
          .bind(4, c.name)
          .bind(5, std::string(to_string(c.outcome)))
          .bind(6, static_cast<int64_t>(c.duration_ms));
      if (c.message.empty()) {
        add_case_.bind_null(7);
      } else {
        add_case_.bind(7, c.message);
      }
      if (auto r = add_case_.run(); !r) return r;
    }
    return {};
  }

  Result<std::vector<TestCase>> cases_of(JobId job, uint32_t attempt) REQUIRES(mutex_) {
    auto q = db_.prepare(
        "SELECT name, outcome, duration_ms, message FROM test_cases "
        "WHERE job = ?1 AND attempt = ?2 ORDER BY idx");
    if (!q) return Error{q.error()};
    q->bind(1, static_cast<int64_t>(job)).bind(2, static_cast<int64_t>(attempt));
    std::vector<TestCase> out;
    while (true) {
      auto row = q->step();
      if (!row) return Error{row.error()};
      if (!*row) break;
      TestCase c;
      c.name = q->column_text(0);
      parse_case_outcome(q->column_text(1), &c.outcome);
      c.duration_ms = static_cast<uint64_t>(q->column_int(2));
      if (!q->column_is_null(3)) c.message = q->column_text(3);
      out.push_back(std::move(c));
    }
    return out;
  }

  Result<FeedPage> read_feed(uint64_t from, uint64_t max, size_t max_bytes) REQUIRES(mutex_) {
    FeedPage page;
    auto bounds = db_.prepare("SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM events");
    if (!bounds) return Error{bounds.error()};
    if (auto row = bounds->step(); !row) return Error{row.error()};
    page.oldest = static_cast<uint64_t>(bounds->column_int(0));
    page.last = static_cast<uint64_t>(bounds->column_int(1));
    // Fell behind what is kept: the reader must take a snapshot; nothing to give.
    if (page.oldest > 0 && from + 1 < page.oldest) return page;
    auto q = db_.prepare(
        "SELECT kind, job, attempt, line FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    if (!q) return Error{q.error()};
    q->bind(1, static_cast<int64_t>(from)).bind(2, static_cast<int64_t>(max));
    while (page.body.size() < max_bytes || page.count == 0) {
      auto row = q->step();
      if (!row) return Error{row.error()};
      if (!*row) break;
      std::string line = q->column_text(3);
      if (q->column_text(0) == to_string(EventKind::JobFinished)) {
        // The cases come from their table, into the line.
        auto cases =
            cases_of(static_cast<JobId>(q->column_int(1)), static_cast<uint32_t>(q->column_int(2)));
        if (!cases) return Error{cases.error()};
        if (!cases->empty()) {
          auto event = parse_event(line);
          if (event) {
            event->cases = std::move(*cases);
            line = serialize_event(*event);
          }
        }
      }
      page.body += line;
      page.count++;
    }
    return page;
  }

  Result<void> migrate() REQUIRES(mutex_) {
    auto r = db_.exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)");
    if (!r) return r;
    auto get = db_.prepare("SELECT value FROM meta WHERE key = 'schema_version'");
    if (!get) return Error{get.error()};
    int version = 0;
    auto row = get->step();
    if (!row) return Error{row.error()};
    if (*row) version = static_cast<int>(get->column_int(0));
    get->reset();
    if (version > kStoreSchemaVersion)
      return make_error("the state database has schema version " + std::to_string(version) +
                        ", newer than this dispatcher knows (" +
                        std::to_string(kStoreSchemaVersion) + ")");
    for (int v = version; v < kStoreSchemaVersion; ++v) {
      if (auto b = db_.exec("BEGIN IMMEDIATE"); !b) return b;
      auto step = db_.exec(kMigrations[v]);
      if (step) {
        step = db_.exec("INSERT INTO meta(key, value) VALUES('schema_version', " +
                        std::to_string(v + 1) +
                        ") ON CONFLICT(key) DO UPDATE SET value = excluded.value");
      }
      if (!step) {
        (void)db_.exec("ROLLBACK");
        return make_error("migration to schema version " + std::to_string(v + 1) +
                          " failed: " + step.error());
      }
      if (auto c = db_.exec("COMMIT"); !c) return c;
    }
    return {};
  }

  Result<void> write(const std::vector<const Job*>& jobs,
                     const std::vector<StoredRunner>& runners_added,
                     const std::vector<std::string>& runners_removed,
                     const std::vector<Repository>& repos) REQUIRES(mutex_) {
    int64_t now = wall_ms();
    for (const Job* job : jobs) {
      auto& s = upsert_job_;
      s.bind(17, job->queued_ms)
          .bind(18, job->started_ms)
          .bind(19, job->finished_ms)
          .bind(20, static_cast<int64_t>(job->seq))
          .bind(21, job->repo)
          .bind(22, join(job->required));
      if (job->info) {
        s.bind(16, serialize_commit_info(*job->info));
      } else {
        s.bind_null(16);
      }
      s.bind(1, static_cast<int64_t>(job->id))
          .bind(2, job->commit)
          .bind(3, job->branch)
          .bind(4, std::string(to_string(job->state)))
          .bind(5, static_cast<int64_t>(job->attempt))
          .bind(6, join(job->runners))
          .bind(7, static_cast<int64_t>(job->infra_failures))
          .bind(15, now);
      if (job->outcome) {
        const JobOutcome& o = *job->outcome;
        s.bind(8, std::string(to_string(o.status)))
            .bind(9, o.tests_run)
            .bind(10, o.tests_failed)
            .bind(11, static_cast<int64_t>(o.duration_ms))
            .bind(12, o.runner)
            .bind(13, static_cast<int64_t>(o.attempt))
            .bind(14, o.reason);
      }
      if (auto r = s.run(); !r) return r;
    }
    for (const auto& a : runners_added) {
      add_runner_.bind(1, a.address)
          .bind(2, now)
          .bind(3, static_cast<int64_t>(a.spec.slots))
          .bind(4, join(a.spec.labels))
          .bind(5, std::string(to_string(a.spec.scope)));
      if (auto r = add_runner_.run(); !r) return r;
    }
    for (const auto& repo : repos) {
      upsert_repo_.bind(1, repo.name).bind(2, repo.url).bind(3, int64_t{repo.newest_first});
      if (auto r = upsert_repo_.run(); !r) return r;
    }
    for (const auto& a : runners_removed) {
      remove_runner_.bind(1, a);
      if (auto r = remove_runner_.run(); !r) return r;
    }
    return {};
  }

  Mutex mutex_;  // the connection: the store thread writes, others read the feed
  sql::Database db_ GUARDED_BY(mutex_);
  const uint64_t retention_;
  sql::Statement add_event_;
  sql::Statement add_case_;
  sql::Statement trim_events_;
  sql::Statement upsert_job_;
  sql::Statement add_runner_;
  sql::Statement remove_runner_;
  sql::Statement upsert_repo_;
  sql::Statement begin_;
  sql::Statement commit_;
  sql::Statement rollback_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, SyncMode sync,
                                                 uint64_t event_retention) {
  auto db = sql::Database::open(path);
  if (!db) return Error{db.error()};
  auto store =
      std::make_unique<SqliteStore>(std::move(*db), std::max<uint64_t>(event_retention, 1));
  if (auto r = store->init(sync); !r) return Error{"state database " + path + ": " + r.error()};
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace ci
