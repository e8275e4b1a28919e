// Writes each finished job as the seed's result file, test_results/<commit>: a short
// header, a blank line, then the test output byte for byte. Atomic: a reader never
// sees half a file.
#pragma once

#include <string>
#include <string_view>

#include "ci/result.h"
#include "ci/validate.h"
#include "dispatcher/scheduler.h"

namespace ci {

class ResultWriter {
 public:
  // `flush`: each file is also flushed to disk (survives power loss, as --sync full).
  explicit ResultWriter(std::string dir, bool flush = true) : dir_(std::move(dir)), flush_(flush) {}
  Result<void> prepare() const;  // creates the folder
  const std::string& dir() const { return dir_; }
  // The result file of a commit: named by its id in lower case; a named repository's
  // in the folder of its name.
  std::string path_for(const std::string& commit, const std::string& repo = "") const {
    return dir_ + "/" + (repo.empty() ? "" : repo + "/") + normalize_commit_id(commit);
  }
  Result<void> write(const Job& job, const JobOutcome& outcome, std::string_view output) const;
  static std::string format(const Job& job, const JobOutcome& outcome, std::string_view output);

 private:
  std::string dir_;
  bool flush_;
};

}  // namespace ci
