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

// `path` may be ":memory:". Creates the schema or migrates an older one. The feed keeps
// its newest `event_retention` events.
inline constexpr uint64_t kDefaultEventRetention = 100000;
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, SyncMode sync,
                                                 uint64_t event_retention = kDefaultEventRetention);

constexpr int kStoreSchemaVersion = 3;

}  // namespace ci
