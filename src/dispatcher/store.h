// The dispatcher's durable state: jobs (with attempts and results) and registered
// runners. The dispatcher writes every change here before it answers OK.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ci/result.h"
#include "scheduler.h"

namespace ci {

enum class SyncMode {
  Normal,  // survives any crash of the process (SQLite WAL, synchronous=NORMAL)
  Full,    // also survives power loss (synchronous=FULL: a flush per commit)
};

struct StoredState {
  std::vector<Job> jobs;             // by id
  std::vector<std::string> runners;  // addresses of the registered runners
};

// Thread-compatible: the dispatcher calls it under its one mutex.
class Store {
 public:
  virtual ~Store() = default;
  virtual Result<StoredState> load() = 0;
  // Writes the jobs (inserted or updated) and the runner changes in one transaction.
  virtual Result<void> save(const std::vector<const Job*>& jobs,
                            const std::vector<std::string>& runners_added,
                            const std::vector<std::string>& runners_removed) = 0;
};

// `path` may be ":memory:". Creates the schema or migrates an older one.
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, SyncMode sync);

constexpr int kStoreSchemaVersion = 1;

}  // namespace ci
