#include "reporter/schema.h"

namespace ci::reporter {

namespace {

// The schema of version kVersion (PRAGMA user_version).
constexpr int kVersion = 1;
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs(
  id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, commit_id TEXT NOT NULL,
  branch TEXT NOT NULL, author TEXT NOT NULL, email TEXT NOT NULL, subject TEXT NOT NULL,
  commit_time INTEGER NOT NULL, state TEXT NOT NULL, status TEXT, attempt INTEGER NOT NULL,
  runner TEXT NOT NULL, tests_run INTEGER NOT NULL, tests_failed INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL, queued_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL, reason TEXT NOT NULL, log_size INTEGER NOT NULL DEFAULT 0,
  repo TEXT NOT NULL DEFAULT '', required TEXT NOT NULL DEFAULT '',
  waiting TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS jobs_by_repo_branch ON jobs(repo, branch, id);
CREATE INDEX IF NOT EXISTS jobs_by_commit ON jobs(commit_id);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE TABLE IF NOT EXISTS cases(
  job INTEGER NOT NULL, attempt INTEGER NOT NULL, name TEXT NOT NULL,
  outcome TEXT NOT NULL, ms INTEGER NOT NULL, message TEXT NOT NULL, branch TEXT NOT NULL,
  repo TEXT NOT NULL DEFAULT '', PRIMARY KEY(job, attempt, name));
CREATE INDEX IF NOT EXISTS cases_by_repo_history ON cases(repo, branch, name, job);
CREATE TABLE IF NOT EXISTS runners(
  address TEXT PRIMARY KEY, state TEXT NOT NULL, job INTEGER NOT NULL,
  joined_ms INTEGER NOT NULL, left_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS branches(
  repo TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, job INTEGER NOT NULL,
  since_job INTEGER NOT NULL, PRIMARY KEY(repo, name));
CREATE TABLE IF NOT EXISTS outbox(
  id INTEGER PRIMARY KEY AUTOINCREMENT, target TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_by_target ON outbox(target, id);
INSERT OR IGNORE INTO meta(key, value) VALUES('last_seq', 0);
)sql";

// A read model of version 0 (one repository: no repo, required or waiting columns,
// branches by name alone) into version 1. Everything it holds is of the default
// repository, so nothing needs the feed again.
constexpr char kFromVersion0[] = R"sql(
ALTER TABLE jobs ADD COLUMN repo TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN required TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN waiting TEXT NOT NULL DEFAULT '';
DROP INDEX IF EXISTS jobs_by_branch;
ALTER TABLE cases ADD COLUMN repo TEXT NOT NULL DEFAULT '';
DROP INDEX IF EXISTS cases_history;
CREATE TABLE branches_v1(
  repo TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL, job INTEGER NOT NULL,
  since_job INTEGER NOT NULL, PRIMARY KEY(repo, name));
INSERT INTO branches_v1(repo, name, state, job, since_job)
  SELECT '', name, state, job, since_job FROM branches;
DROP TABLE branches;
ALTER TABLE branches_v1 RENAME TO branches;
)sql";

Result<int64_t> single_int(sql::Database& db, const char* text) {
  auto s = db.prepare(text);
  if (!s) return Error{s.error()};
  auto row = s->step();
  if (!row) return Error{row.error()};
  return *row ? s->column_int(0) : 0;
}

// Brings the file to kVersion in one transaction (the reporter's connections may open
// it at once: the first migrates, the others find it done).
Result<void> migrate(sql::Database& db) {
  auto version = single_int(db, "PRAGMA user_version");
  if (!version) return Error{version.error()};
  if (*version == kVersion) return {};
  if (*version > kVersion)
    return make_error("the read model is of a newer version (" + std::to_string(*version) +
                      "); remove it to rebuild it from the feed");
  sql::Transaction tx(db);
  if (!tx.begun()) return tx.begun();
  version = single_int(db, "PRAGMA user_version");
  if (!version) return Error{version.error()};
  if (*version == kVersion) return {};
  auto old = single_int(db,
                        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
                        "name = 'jobs'");
  if (!old) return Error{old.error()};
  if (*old)
    if (auto r = db.exec(kFromVersion0); !r) return r;
  if (auto r = db.exec(kSchema); !r) return r;
  if (auto r = db.exec("PRAGMA user_version = " + std::to_string(kVersion)); !r) return r;
  return tx.commit();
}

}  // namespace

Result<sql::Database> open_read_model(const std::string& path) {
  auto db = sql::Database::open(path);
  if (!db) return db;
  // NORMAL with WAL: a committed transaction survives a crash of the process; the
  // feed can be read again after a power loss, as the reporter holds no original data.
  if (auto r = db->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"); !r)
    return Error{r.error()};
  if (auto r = migrate(*db); !r) return Error{r.error()};
  return db;
}

}  // namespace ci::reporter
