#include "dispatcher/sqlite_store.h"

#include <chrono>
#include <sstream>

#include "dispatcher/sqlite.h"

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
};

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
  explicit SqliteStore(sql::Database db) : db_(std::move(db)) {}

  Result<void> init(SyncMode sync) {
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
                       reason, created_at, updated_at, finished_at)
      VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15,
             CASE WHEN ?4 = 'finished' THEN ?15 END)
      ON CONFLICT(id) DO UPDATE SET
        state = excluded.state, attempt = excluded.attempt, runners = excluded.runners,
        infra_failures = excluded.infra_failures, status = excluded.status,
        tests_run = excluded.tests_run, tests_failed = excluded.tests_failed,
        duration_ms = excluded.duration_ms, result_runner = excluded.result_runner,
        result_attempt = excluded.result_attempt, reason = excluded.reason,
        updated_at = excluded.updated_at,
        finished_at = CASE WHEN excluded.state = 'finished'
                           THEN COALESCE(jobs.finished_at, excluded.finished_at) END
    )sql");
    if (!upsert) return Error{upsert.error()};
    upsert_job_ = std::move(*upsert);
    auto add = db_.prepare(
        "INSERT INTO runners(address, registered_at) VALUES(?1, ?2) "
        "ON CONFLICT(address) DO NOTHING");
    if (!add) return Error{add.error()};
    add_runner_ = std::move(*add);
    auto remove = db_.prepare("DELETE FROM runners WHERE address = ?1");
    if (!remove) return Error{remove.error()};
    remove_runner_ = std::move(*remove);
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
    StoredState state;
    auto jobs = db_.prepare(
        "SELECT id, commit_id, branch, state, attempt, runners, infra_failures, status, "
        "tests_run, tests_failed, duration_ms, result_runner, result_attempt, reason "
        "FROM jobs ORDER BY id");
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
      state.jobs.push_back(std::move(job));
    }
    auto runners = db_.prepare("SELECT address FROM runners ORDER BY registered_at, address");
    if (!runners) return Error{runners.error()};
    while (true) {
      auto row = runners->step();
      if (!row) return Error{row.error()};
      if (!*row) break;
      state.runners.push_back(runners->column_text(0));
    }
    return state;
  }

  Result<void> save(const std::vector<const Job*>& jobs,
                    const std::vector<std::string>& runners_added,
                    const std::vector<std::string>& runners_removed) override {
    if (jobs.empty() && runners_added.empty() && runners_removed.empty()) return {};
    if (auto r = begin_.run(); !r) return r;
    auto result = write(jobs, runners_added, runners_removed);
    if (result) result = commit_.run();
    if (!result) (void)rollback_.run();
    return result;
  }

 private:
  Result<void> migrate() {
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
                     const std::vector<std::string>& runners_added,
                     const std::vector<std::string>& runners_removed) {
    int64_t now = wall_ms();
    for (const Job* job : jobs) {
      auto& s = upsert_job_;
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
      add_runner_.bind(1, a).bind(2, now);
      if (auto r = add_runner_.run(); !r) return r;
    }
    for (const auto& a : runners_removed) {
      remove_runner_.bind(1, a);
      if (auto r = remove_runner_.run(); !r) return r;
    }
    return {};
  }

  sql::Database db_;
  sql::Statement upsert_job_;
  sql::Statement add_runner_;
  sql::Statement remove_runner_;
  sql::Statement begin_;
  sql::Statement commit_;
  sql::Statement rollback_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, SyncMode sync) {
  auto db = sql::Database::open(path);
  if (!db) return Error{db.error()};
  auto store = std::make_unique<SqliteStore>(std::move(*db));
  if (auto r = store->init(sync); !r) return Error{"state database " + path + ": " + r.error()};
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace ci
