// A tiny RAII layer over SQLite: a connection and prepared statements with bind/step.
// Errors are values; the sqlite3 handles stay out of the callers' sight. The
// dispatcher's store and the reporter's read model both use it (library ci_sqlite).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ci/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace ci::sql {

class Statement {
 public:
  Statement() = default;
  Statement(Statement&&) noexcept = default;
  Statement& operator=(Statement&&) noexcept = default;

  Statement& bind(int index, int64_t value);
  Statement& bind(int index, const std::string& value);
  Statement& bind_null(int index);
  // Runs one step: true when a row is ready, false when done.
  Result<bool> step();
  // Runs to completion and resets, ready for the next bindings.
  Result<void> run();
  void reset();
  int64_t column_int(int index) const;
  std::string column_text(int index) const;
  bool column_is_null(int index) const;

 private:
  friend class Database;
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const;
  };
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
  sqlite3* db_ = nullptr;
};

class Database {
 public:
  // `path` may be ":memory:".
  static Result<Database> open(const std::string& path);
  Database(Database&&) noexcept = default;
  Database& operator=(Database&&) noexcept = default;

  Result<void> exec(const std::string& sql);
  // Rows the last INSERT, UPDATE or DELETE changed.
  int64_t changes() const;
  Result<Statement> prepare(const std::string& sql);
  std::string error() const;

 private:
  struct Closer {
    void operator()(sqlite3* db) const;
  };
  Database() = default;
  std::unique_ptr<sqlite3, Closer> db_;
};

// BEGIN IMMEDIATE on construction; ROLLBACK at its end unless commit() succeeded, so
// that an error on any path leaves nothing half-applied.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  const Result<void>& begun() const { return begun_; }
  Result<void> commit();

 private:
  Database& db_;
  Result<void> begun_;
  bool open_ = false;
};

}  // namespace ci::sql
