// The dispatcher's store in an SQLite file (over the thin wrapper of sqlite.h): the
// schema, its migrations, and the rows of jobs and runners.
#pragma once

#include <memory>
#include <string>

#include "ci/result.h"
#include "dispatcher/store.h"

namespace ci {

enum class SyncMode {
  Normal,  // survives any crash of the process (SQLite WAL, synchronous=NORMAL)
  Full,    // also survives power loss (synchronous=FULL: a flush per commit)
};

// `path` may be ":memory:". Creates the schema or migrates an older one.
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, SyncMode sync);

constexpr int kStoreSchemaVersion = 1;

}  // namespace ci
