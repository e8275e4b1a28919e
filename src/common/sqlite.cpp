#include "ci/sqlite.h"

#include <sqlite3.h>

namespace ci::sql {

void Statement::Finalizer::operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
void Database::Closer::operator()(sqlite3* db) const { sqlite3_close_v2(db); }

Statement& Statement::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_.get(), index, value);
  return *this;
}

Statement& Statement::bind(int index, const std::string& value) {
  sqlite3_bind_text(stmt_.get(), index, value.data(), static_cast<int>(value.size()),
                    SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind_null(int index) {
  sqlite3_bind_null(stmt_.get(), index);
  return *this;
}

Result<bool> Statement::step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return make_error(std::string("sqlite: ") + sqlite3_errmsg(db_));
}

Result<void> Statement::run() {
  auto r = step();
  reset();
  if (!r) return Error{r.error()};
  return {};
}

void Statement::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

int64_t Statement::column_int(int index) const { return sqlite3_column_int64(stmt_.get(), index); }

std::string Statement::column_text(int index) const {
  const unsigned char* text = sqlite3_column_text(stmt_.get(), index);
  int n = sqlite3_column_bytes(stmt_.get(), index);
  return text ? std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(n)) : "";
}

bool Statement::column_is_null(int index) const {
  return sqlite3_column_type(stmt_.get(), index) == SQLITE_NULL;
}

Result<Database> Database::open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Database db;
  db.db_.reset(raw);
  if (rc != SQLITE_OK)
    return make_error("cannot open " + path + ": " + (raw ? sqlite3_errmsg(raw) : "out of memory"));
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

Result<void> Database::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    return make_error("sqlite: " + message);
  }
  return {};
}

Result<Statement> Database::prepare(const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v3(db_.get(), sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr) !=
      SQLITE_OK)
    return make_error("sqlite: " + error());
  Statement s;
  s.stmt_.reset(raw);
  s.db_ = db_.get();
  return s;
}

std::string Database::error() const { return sqlite3_errmsg(db_.get()); }

int64_t Database::changes() const { return sqlite3_changes64(db_.get()); }

Transaction::Transaction(Database& db) : db_(db), begun_(db.exec("BEGIN IMMEDIATE")) {
  open_ = begun_.ok();
}

Transaction::~Transaction() {
  if (open_) (void)db_.exec("ROLLBACK");
}

Result<void> Transaction::commit() {
  if (!open_) return make_error("no transaction is open");
  auto r = db_.exec("COMMIT");
  if (r) open_ = false;
  return r;
}

}  // namespace ci::sql
