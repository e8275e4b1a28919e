#include "reporter/schema.h"

namespace ci::reporter {

namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, commit_id TEXT NOT NULL,
  branch TEXT NOT NULL, author TEXT NOT NULL, email TEXT NOT NULL, subject TEXT NOT NULL,
  commit_time INTEGER NOT NULL, state TEXT NOT NULL, status TEXT, attempt INTEGER NOT NULL,
  runner TEXT NOT NULL, tests_run INTEGER NOT NULL, tests_failed INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL, queued_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL, reason TEXT NOT NULL, log_size INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_by_branch ON jobs(branch, id);
CREATE INDEX IF NOT EXISTS jobs_by_commit ON jobs(commit_id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE TABLE IF NOT EXISTS cases(
  job INTEGER NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
  outcome TEXT NOT NULL, ms INTEGER NOT NULL, message TEXT NOT NULL, branch TEXT NOT NULL,
  PRIMARY KEY(job, attempt, name));
CREATE INDEX IF NOT EXISTS cases_history ON cases(branch, name, job);
CREATE TABLE IF NOT EXISTS runners(
  address TEXT PRIMARY KEY, state TEXT NOT NULL, job INTEGER NOT NULL,
  joined_ms INTEGER NOT NULL, left_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS branches(
  name TEXT PRIMARY KEY, state TEXT NOT NULL, job INTEGER NOT NULL, since_job INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_by_target ON outbox(target, id);
INSERT OR IGNORE INTO meta(key, value) VALUES('last_seq', 0);
)sql";

}  // namespace

Result<sql::Database> open_read_model(const std::string& path) {
  auto db = sql::Database::open(path);
  if (!db) return db;
  // NORMAL with WAL: a committed transaction survives a crash of the process; the
  // feed can be read again after a power loss, as the reporter holds no original data.
  if (auto r = db->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"); !r)
    return Error{r.error()};
  if (auto r = db->exec(kSchema); !r) return Error{r.error()};
  return db;
}

}  // namespace ci::reporter
